"""The static site: tools/build_site.py renders the committed notebooks, and headless Chromium reads the pages.

The site is built into a temporary folder (not `_site/`) and served by Python's http.server on loopback.
The browser is Debian's chromium with chromium-driver, which `make test` installs; without them the
browser tests skip, saying why."""
import functools, http.server, runpy, shutil, struct, subprocess, sys, threading
from pathlib import Path

import nbformat, pytest
from bs4 import BeautifulSoup

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT/'nbs'
CHAPTER = '01_data'
CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')
CHROMEDRIVER = shutil.which('chromedriver')
# Headless, and no calls to Google's services: this machine's network is closed.
CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                  '--disable-background-networking', '--disable-component-update', '--disable-sync',
                  '--window-size=1280,1000']

def chapters(): return sorted(p.stem for p in NBS.glob('[0-9]*.ipynb'))

def title_of(name):
    "The notebook's title: its first `# ` heading."
    nb = nbformat.read(NBS/f'{name}.ipynb', as_version=4)
    return next(c.source.splitlines()[0][2:].strip() for c in nb.cells if c.cell_type == 'markdown' and c.source.startswith('# '))

def page(site, name): return BeautifulSoup((site/f'{name}.html').read_text(encoding='utf-8'), 'html.parser')

@pytest.fixture(scope='module')
def site(tmp_path_factory):
    "The whole course, built as `make site` builds it."
    out = tmp_path_factory.mktemp('site')/'_site'
    r = subprocess.run([sys.executable, ROOT/'tools'/'build_site.py', '--nbs', NBS, '--out', out],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return out

def test_one_page_per_notebook(site):
    assert sorted(p.name for p in site.iterdir()) == sorted(['index.html', *(f'{c}.html' for c in chapters())])

def test_rebuild_swaps_the_whole_site(tmp_path):
    build_site = runpy.run_path(str(ROOT/'tools'/'build_site.py'))['build_site']
    nbs, out = tmp_path/'nbs', tmp_path/'_site'
    nbs.mkdir()
    for name in ('index', CHAPTER): shutil.copy(NBS/f'{name}.ipynb', nbs)
    build_site(nbs, out)
    (out/'stale.html').write_text('from an older build')
    build_site(nbs, out)
    assert sorted(p.name for p in out.iterdir()) == ['01_data.html', 'index.html']
    # A notebook that cannot be read stops the build and leaves the last good site as it was.
    (nbs/'02_broken.ipynb').write_text('{"cells": [')
    with pytest.raises(Exception): build_site(nbs, out)
    assert sorted(p.name for p in out.iterdir()) == ['01_data.html', 'index.html']
    assert sorted(p.name for p in tmp_path.iterdir()) == ['_site', 'nbs'], "temporary folders were left behind"

def test_pages_hold_prose_code_and_outputs(site):
    for name in chapters():
        doc = page(site, name)
        assert doc.h1.get_text().strip('¶') == title_of(name)
        assert doc.title.string.startswith(title_of(name))
        assert doc.select('.jp-MarkdownCell') and doc.select('.jp-CodeCell .jp-InputArea'), name
        assert doc.select('.jp-OutputArea-output'), f"{name}.ipynb holds no outputs: execute it before it is published"
    doc = page(site, CHAPTER)
    code = '\n'.join(c.get_text() for c in doc.select('.jp-InputArea'))
    assert 'def load_sample(' in code and 'book_threes.shape' in code      # exported and teaching cells both show
    assert '#|' not in code                                                 # directives are for nbdev, not readers
    assert 'filterwarnings' not in code                                     # the `#| hide` cell is gone
    assert 'torch.Size([6131, 28, 28])' in doc.get_text()                   # outputs come from the committed notebook
    assert doc.select('.jp-OutputArea-output img[src^="data:image/png;base64,"]')  # figures are embedded

def test_navigation(site):
    names = ['index', *chapters()]
    for i, name in enumerate(names):
        doc = page(site, name)
        assert not doc.select('a[href$=".ipynb"]'), f"{name}.html still links to notebooks"
        assert [a['href'] for a in doc.select('nav.site-nav ol a')] == [f'{c}.html' for c in chapters()]
        assert doc.select_one('a[rel=home]')['href'] == 'index.html'
        prev, next = doc.select_one('a[rel=prev]'), doc.select_one('a[rel=next]')
        assert (prev['href'] if prev else None) == (f'{names[i-1]}.html' if i > 0 else None)
        assert (next['href'] if next else None) == (f'{names[i+1]}.html' if i+1 < len(names) else None)
    overview = {a['href'] for a in page(site, 'index').main.select('.jp-MarkdownCell a')}
    assert {f'{c}.html' for c in chapters()} <= overview, "the course overview must link every chapter"

@pytest.fixture(scope='module')
def server(site):
    "The site over HTTP on a free loopback port."
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args): pass
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(Quiet, directory=site))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try: yield f'http://127.0.0.1:{httpd.server_address[1]}'
    finally:
        httpd.shutdown(); httpd.server_close(); thread.join(10)

@pytest.fixture(scope='module')
def browser(tmp_path_factory):
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("needs chromium and chromedriver (Debian: apt-get install chromium chromium-driver; `make test` does it as root)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in [*CHROMIUM_FLAGS, f'--user-data-dir={tmp_path_factory.mktemp("chromium-profile")}']: opts.add_argument(flag)
    # An explicit driver path, so that selenium-manager never tries to download one.
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(60); driver.set_script_timeout(30)
    try: yield driver
    finally: driver.quit()

def visible_figures(driver):
    "How many output images the browser decoded."
    return driver.execute_script(
        "return [...document.querySelectorAll('.jp-OutputArea-output img')].filter(i => i.complete && i.naturalWidth > 0).length")

def png_size(data):
    assert data[:8] == b'\x89PNG\r\n\x1a\n', "not a PNG"
    return struct.unpack('>II', data[16:24])

def test_index_in_browser(browser, server, tmp_path):
    from selenium.webdriver.common.by import By
    browser.get(f'{server}/index.html')
    assert browser.find_element(By.TAG_NAME, 'h1').text.strip('¶') == title_of('index')
    assert len(browser.find_elements(By.CSS_SELECTOR, 'nav.site-nav li')) == len(chapters())
    browser.save_screenshot(tmp_path/'index.png')
    assert png_size((tmp_path/'index.png').read_bytes())[0] > 800
    # Follow the overview's link to the first chapter, as a reader would.
    browser.find_element(By.CSS_SELECTOR, f'main a[href="{CHAPTER}.html"]').click()
    assert browser.current_url == f'{server}/{CHAPTER}.html'
    assert browser.find_element(By.TAG_NAME, 'h1').text.strip('¶') == title_of(CHAPTER)

def test_chapter_in_browser(browser, server, tmp_path):
    from selenium.webdriver.common.by import By
    browser.get(f'{server}/{CHAPTER}.html')
    assert browser.title.startswith(title_of(CHAPTER))
    assert browser.find_element(By.TAG_NAME, 'h1').text.strip('¶') == title_of(CHAPTER)
    code = [e.text for e in browser.find_elements(By.CSS_SELECTOR, '.jp-CodeCell .jp-InputArea')]
    assert len(code) > 10 and any('load_digit(' in c for c in code)
    assert visible_figures(browser) >= 1
    shot = tmp_path/f'{CHAPTER}.png'
    browser.save_screenshot(shot)
    data = shot.read_bytes()
    width, height = png_size(data)
    assert width > 800 and height > 600 and len(data) > 20_000, (width, height, len(data))
    # The next-chapter link leads on.
    nxt = browser.find_element(By.CSS_SELECTOR, 'a[rel=next]')
    href = nxt.get_attribute('href')
    nxt.click()
    assert browser.current_url == href and browser.find_element(By.TAG_NAME, 'h1').text
