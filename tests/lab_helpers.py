"""JupyterLab in a real browser, for the tests: a lab server on a folder of notebooks, headless Chromium, and the
few things a test does there (open a notebook, run it, draw with the mouse, move a slider, look at a figure).

A test of a slider in another notebook is a few lines:

    with lab_server(root, tmp) as lab, chromium(tmp) as driver:
        open_notebook(driver, lab, '04_sgd_quadratic.ipynb'); run_all(driver)
        figure = find(driver, '.jp-OutputArea-output img'); before = figure.screenshot_as_png
        move_slider(driver, find(driver, '.widget-slider'), 3)
        wait_until(lambda: figure.screenshot_as_png != before, 'the figure to change')
"""
import json, os, secrets, shutil, subprocess, sys, time
from contextlib import contextmanager
from pathlib import Path

import pytest, requests

from test_jupyter_server import free_port, wait_for, KERNEL, START_TIMEOUT

CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')
CHROMEDRIVER = shutil.which('chromedriver')
# Headless, and no calls to Google's services: this machine's network is closed.
CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                  '--disable-background-networking', '--disable-component-update', '--disable-sync',
                  '--window-size=1280,1000']

NO_BROWSER = "needs chromium and chromedriver (Debian: apt-get install chromium chromium-driver; `make test` does it as root)"
# JupyterLab's settings for a test: no news or update checks (the network is closed, and their popup covers the page),
# and every cell kept in the page (windowing would leave cells out of view unrendered, so not found).
SETTINGS = {'@jupyterlab/apputils-extension/notification': {'fetchNews': 'false', 'checkForUpdates': False},
            '@jupyterlab/notebook-extension/tracker': {'windowingMode': 'none'}}

@contextmanager
def lab_server(root, tmp, env=None):
    "JupyterLab on `root` (127.0.0.1, a free port, a token, settings in `tmp`), started as `make lab` does: yields `(url, token)`."
    tmp = Path(tmp)
    for name, values in SETTINGS.items():
        p = tmp/'settings'/f'{name}.jupyterlab-settings'
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(values))
    port, token, log = free_port(), secrets.token_hex(16), tmp/'lab.log'
    env = {**os.environ, **(env or {}), 'JUPYTER_RUNTIME_DIR': str(tmp/'runtime'), 'JUPYTERLAB_SETTINGS_DIR': str(tmp/'settings'),
           'JUPYTERLAB_WORKSPACES_DIR': str(tmp/'workspaces')}   # a fresh workspace: no tabs left open by a last run
    env.pop('MPLBACKEND', None)   # figures inline, as a learner sees them
    cmd = [Path(sys.executable).with_name('jupyter'), 'lab', '--no-browser', '--ServerApp.ip=127.0.0.1',
           f'--ServerApp.port={port}', '--ServerApp.port_retries=0', f'--IdentityProvider.token={token}',
           f'--ServerApp.root_dir={root}', f'--MappingKernelManager.default_kernel_name={KERNEL}',
           '--LabApp.news_url=None', '--LabApp.expose_app_in_browser=True']   # window.jupyterapp: its commands
    if os.geteuid() == 0: cmd.append('--allow-root')  # containers and CI run as root
    url = f'http://127.0.0.1:{port}'
    def up():
        try: return requests.get(f'{url}/api/status', headers={'Authorization': f'token {token}'}, timeout=5).ok
        except requests.RequestException: return False
    with open(log, 'w') as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=root)
    try:
        wait_for(up, 'answer on /api/status', START_TIMEOUT, proc, log)
        yield url, token
    finally:
        proc.terminate()
        try: proc.wait(timeout=20)
        except subprocess.TimeoutExpired: proc.kill(); proc.wait(timeout=10)

@contextmanager
def chromium(tmp):
    "Headless Chromium driven by selenium, with its profile in `tmp`; the test skips if chromium is not installed."
    if not (CHROMIUM and CHROMEDRIVER): pytest.skip(NO_BROWSER)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in [*CHROMIUM_FLAGS, f'--user-data-dir={Path(tmp)/"chromium-profile"}']: opts.add_argument(flag)
    # An explicit driver path, so that selenium-manager never tries to download one.
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(90); driver.set_script_timeout(60)
    try: yield driver
    finally: driver.quit()

def wait_until(ready, what, timeout=60, every=0.25):
    "Poll `ready()` until it returns something true, and return that; fail saying `what` was awaited."
    from selenium.common.exceptions import StaleElementReferenceException
    deadline = time.monotonic() + timeout
    while True:
        try: got = ready()
        except StaleElementReferenceException: got = None   # the widget re-rendered the element under us: look again
        if got: return got
        if time.monotonic() > deadline: pytest.fail(f"waited {timeout} s for {what}")
        time.sleep(every)

def js(driver, script, *args):
    "The value of the JavaScript function body `script`, run in the page with `args` (a `return` gives the value)."
    return driver.execute_script(script, *args)

def find(driver, css, timeout=60):
    "The first element matching `css`, once there is one."
    return wait_until(lambda: (driver.find_elements('css selector', css) or [None])[0], f"an element {css!r}", timeout)

KERNEL_STATE = """
const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
if (!w || !w.sessionContext || !w.content) return null;
const k = w.sessionContext.session && w.sessionContext.session.kernel;
const cells = w.content.widgets.filter(c => c.model.type === 'code');
const errors = cells.flatMap(c => c.model.outputs.toJSON().filter(o => o.output_type === 'error')
                                   .map(o => o.ename + ': ' + o.evalue));
return {status: k ? k.status : null, done: cells.every(c => c.model.executionCount !== null), errors: errors};
"""

def kernel_state(driver):
    "The current notebook's kernel status, whether every code cell has run, and its cells' errors; None before it opens."
    return js(driver, 'return (() => {' + KERNEL_STATE + '})()')

def open_notebook(driver, lab, path, timeout=START_TIMEOUT):
    "Open the notebook `path` (under the lab's root) in JupyterLab, and wait for its kernel to be idle."
    url, token = lab
    driver.get(f'{url}/lab/tree/{path}?token={token}')
    wait_until(lambda: (kernel_state(driver) or {}).get('status') == 'idle', f"{path} open with an idle kernel", timeout)

def lab_command(driver, command, args=None, wait=True):
    "Run JupyterLab's `command` (as the menus and the command palette do); wait for it to finish if `wait`."
    if not wait: return js(driver, "window.jupyterapp.commands.execute(arguments[0], arguments[1] || {})", command, args)
    return driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        window.jupyterapp.commands.execute(arguments[0], arguments[1] || {}).then(() => done(null), e => done(String(e)));
        """, command, args)

def run_all(driver, timeout=300):
    "Clear the notebook's outputs, run all its cells (Run > Run All Cells), and wait until all ran; fail on an error."
    assert lab_command(driver, 'notebook:clear-all-cell-outputs') is None
    state = lambda: kernel_state(driver)
    wait_until(lambda: state()['done'] is False, 'the outputs to be cleared', 30)   # no stale widget is mistaken for a new one
    lab_command(driver, 'notebook:run-all-cells', wait=False)   # its promise is the whole run: we poll instead
    errors = []
    def finished():   # an error ends the wait, and is reported below (not as a timeout)
        s = state()
        errors.extend(s['errors'])
        return errors or (s['done'] and s['status'] == 'idle')
    try: wait_until(finished, 'every cell to run', timeout, every=1)
    except pytest.fail.Exception:
        counts = js(driver, "return window.jupyterapp.shell.currentWidget.content.widgets"
                            ".filter(c => c.model.type === 'code').map(c => c.model.executionCount)")
        pytest.fail(f"not every cell ran within {timeout} s; execution counts of the code cells: {counts}")
    if errors: pytest.fail(f"a cell failed in JupyterLab: {errors}")

def into_view(driver, element):
    "`element`, scrolled to the middle of the window (the mouse can only reach what is in view)."
    js(driver, "arguments[0].scrollIntoView({block: 'center', inline: 'center'})", element)
    return element

def draw(driver, element, strokes, steps=6):
    "Draw `strokes` (lists of `(x, y)` in `element`'s CSS pixels from its top left) with the mouse: press, move, release."
    from selenium.webdriver import ActionChains
    into_view(driver, element)
    w, h = element.size['width'], element.size['height']
    for stroke in strokes:
        chain = ActionChains(driver, duration=10)
        (x, y), *rest = stroke
        chain.move_to_element_with_offset(element, round(x - w/2), round(y - h/2)).click_and_hold()   # offsets from the centre
        for nx, ny in rest:   # in small moves, as a hand makes them: each is one pointermove
            for i in range(1, steps + 1):
                dx, dy = round(x + (nx - x)*i/steps) - round(x + (nx - x)*(i-1)/steps), round(y + (ny - y)*i/steps) - round(y + (ny - y)*(i-1)/steps)
                chain.move_by_offset(dx, dy)
            x, y = nx, ny
        chain.release().perform()

def move_slider(driver, slider, presses):
    "Move the ipywidgets slider `slider` (its `.widget-slider` element) by `presses` steps with the arrow keys."
    from selenium.webdriver.common.keys import Keys
    handle = into_view(driver, slider).find_element('css selector', '.noUi-handle')
    handle.click()   # focus: the arrow keys go to the handle
    handle.send_keys((Keys.ARROW_RIGHT if presses > 0 else Keys.ARROW_LEFT) * abs(presses))

def screenshot(driver, path):
    "Save the browser's window as the PNG `path`, print where, and return it."
    driver.save_screenshot(str(path))
    print(f"screenshot: {path}")
    return path
