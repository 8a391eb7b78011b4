"""The handwriting notebook in a real JupyterLab, in headless Chromium: run all its cells, draw a 7 on the pad with
the mouse and read the models' answer; move the shift slider and see the figure change.

The lab serves a temporary folder holding a copy of nbs/17_handwriting.ipynb, on a free loopback port with a
token, the way tests/test_jupyter_server.py starts its server; the kernel is the project's `mnist37`. The server,
the browser and the run of the notebook are shared by the tests of this module. Without chromium and
chromedriver the tests skip, saying why."""
import re, shutil
from pathlib import Path

import pytest

from lab_helpers import lab_server, chromium, open_notebook, run_all, find, draw, move_slider, screenshot, wait_until, into_view

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = '17_handwriting.ipynb'
SEVEN = [[(75, 65), (205, 65), (125, 225)]]   # the notebook's 7, in the pad's pixels: along the top, then down-left
VERDICT = '.mnist37-verdict[data-model="{model}"][data-input="{input}"]'

@pytest.fixture(scope='module')
def notebook(tmp_path_factory, both_data, full_root):
    "The browser, on the handwriting notebook in JupyterLab, once all its cells have run."
    tmp = tmp_path_factory.mktemp('lab')
    root = tmp/'notebooks'
    root.mkdir()
    shutil.copy(ROOT/'nbs'/NOTEBOOK, root)
    # The kernel reads the session's extracted sample and full MNIST, and full MNIST's lasting cache (conftest.py).
    env = {'FASTAI_HOME': str(tmp/'fastai_home'), 'MNIST37_CACHE': str(full_root.parent/'cache'), 'MNIST37_DATA': str(both_data),
           'OMP_NUM_THREADS': '1'}   # as under nbdev_test: two threads fight over two cores
    with chromium(tmp) as driver, lab_server(root, tmp, env) as lab:
        open_notebook(driver, lab, NOTEBOOK)
        run_all(driver, timeout=420)   # training both models: ~30 s when idle
        find(driver, '.mnist37-pad-canvas')
        yield driver, tmp   # screenshots go in `tmp`, which outlives the tests (conftest removes a passed test's tmp_path)

def verdict(driver, model, input='centred'):
    "The answer the app shows for `model` ('3/7' or '0–9') on the `input` ('centred' or 'as drawn')."
    return find(driver, VERDICT.format(model=model, input=input)).text

def shown_digit(driver, model, input='centred'):
    "The digit of the answer shown, once there is one (not 'draw a digit')."
    m = wait_until(lambda: re.fullmatch(rf'{model} model: (\d) \(p=[\d.]+\)', verdict(driver, model, input)),
                   f"the {model} model's answer")
    return int(m[1])

def pad(driver): return find(driver, '.mnist37-pad-canvas')

def test_a_7_drawn_with_the_mouse_is_a_7(notebook):
    driver, shots = notebook
    find(driver, '.mnist37-pad-clear').click()
    wait_until(lambda: 'draw a digit' in verdict(driver, '0–9'), 'the app to be cleared')
    draw(driver, pad(driver), SEVEN)
    digits = shown_digit(driver, '0–9'), shown_digit(driver, '3/7')
    screenshot(driver, shots/'drawn_7.png')
    assert digits == (7, 7), [verdict(driver, m) for m in ('0–9', '3/7')]
    ink = driver.execute_script("""const c = arguments[0], d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 0; i < d.length; i += 4) n += d[i] < 128; return n;""", pad(driver))
    assert ink > 3000, f"the pad shows only {ink} dark pixels: the strokes were not drawn"

def test_the_shift_slider_moves_the_input_as_drawn(notebook):
    driver, shots = notebook
    if not re.search(r': \d', verdict(driver, '0–9')): draw(driver, pad(driver), SEVEN)   # when run on its own
    shown_digit(driver, '0–9')
    drawn, centred = find(driver, '.mnist37-input-as-drawn'), find(driver, '.mnist37-input-centred')
    into_view(driver, drawn)
    before = drawn.screenshot_as_png, centred.screenshot_as_png
    move_slider(driver, find(driver, '.mnist37-shift'), 5)
    wait_until(lambda: drawn.screenshot_as_png != before[0], 'the input as drawn to change', 30)
    screenshot(driver, shots/'shifted.png')
    assert find(driver, '.mnist37-shift .widget-readout').text == '5'
    assert centred.screenshot_as_png == before[1], "centring by mass should undo the shift"
    assert shown_digit(driver, '3/7', 'as drawn') == 3   # as the notebook says: the 7 moved right is a 3 to the 3/7 model
