"""The static site: tools/build_site.py builds it with MkDocs, and headless Chromium reads the pages.

The site is built into a temporary folder (not `_site/`) and served by Python's http.server on loopback. Its
English pages are at the top, its Korean ones (from nbs/ko/) in `ko/`: the checks of pages run on both.
The browser is Debian's chromium with chromium-driver, which `make test` installs; without them the
browser tests skip, saying why. The browser tests keep a screenshot of what they checked in `_site_shots/`."""
import functools, http.server, json, posixpath, re, runpy, shutil, struct, subprocess, sys, threading, time
from pathlib import Path

import nbformat, pytest
from bs4 import BeautifulSoup

from lab_helpers import chromium

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT/'nbs'
SHOTS = ROOT/'_site_shots'
CHAPTER = '01_data'
MATH_CHAPTER = '08_nonlinearity'  # formulas in `$...$`
TEX = re.compile(r'\$[^\s$][^$\n]*\$|\\(?:frac|tfrac|big|sum|text|mathrm|log|cdot)\b')  # TeX left untypeset
FOLDER = {'en': '', 'ko': 'ko'}   # each language's folder, under nbs/ and under the site
LANGS = pytest.mark.parametrize('lang', list(FOLDER))

@functools.cache
def tool():
    "tools/build_site.py's functions (loaded on first use: tests/lab_helpers.py imports this module for its browser)."
    return runpy.run_path(str(ROOT/'tools'/'build_site.py'))

def pages_of(site, lang='en'): return site/FOLDER[lang]
def nbs_of(site, lang='en'): return site.parent/'nbs'/FOLDER[lang]
def chapters(site, lang='en'): return sorted(p.stem for p in nbs_of(site, lang).glob('[0-9]*.ipynb'))
def other(lang): return next(l for l in FOLDER if l != lang)

def title_of(site, name, lang='en'):
    "The notebook's title: its first `# ` heading."
    nb = nbformat.read(nbs_of(site, lang)/f'{name}.ipynb', as_version=4)
    return next(c.source.splitlines()[0][2:].strip() for c in nb.cells if c.cell_type == 'markdown' and c.source.startswith('# '))

def page(site, name): return _page(site/f'{name}.html', (site/f'{name}.html').stat().st_mtime_ns)

@functools.lru_cache(maxsize=64)
def _page(path, mtime): return BeautifulSoup(path.read_text(encoding='utf-8'), 'html.parser')
def h1(doc): return doc.h1.get_text().strip().strip('¶').strip()

def build(nbs, out):
    "`make site`'s command, on `nbs`, into `out`; its stderr."
    r = subprocess.run([sys.executable, ROOT/'tools'/'build_site.py', '--nbs', nbs, '--out', out],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stderr

@pytest.fixture(scope='module')
def built(tmp_path_factory):
    "The whole course, built as `make site` builds it, and what the build said on stderr."
    # From a copy of nbs/ beside the site: notebooks may be added meanwhile.
    out = tmp_path_factory.mktemp('site')/'_site'
    shutil.copytree(NBS, out.parent/'nbs', ignore=shutil.ignore_patterns('.*'))
    return out, build(out.parent/'nbs', out)

@pytest.fixture(scope='module')
def site(built): return built[0]

@LANGS
def test_one_page_per_notebook(site, lang):
    pages = pages_of(site, lang)
    assert sorted(p.name for p in pages.glob('*.html')) == sorted(['index.html', '404.html', *(f'{c}.html' for c in chapters(site, lang))])
    assert not list(pages.glob('*.ipynb')), "the notebooks themselves are not published"

def test_links_between_notebooks_resolve(built):
    (site, stderr) = built
    assert 'links to' not in stderr, stderr  # tools/site_hooks.py warns of links to missing pages or headings
    for lang in FOLDER:
        pages = pages_of(site, lang)
        for name in ['index', *chapters(site, lang)]:
            doc = page(pages, name)
            assert not doc.select('a[href*=".ipynb"]'), f"{name}.html still links to notebooks"
            # Every page link leads to a page; the Korean index's to the appendices, to the English ones.
            hrefs = {a['href'].split('#')[0] for a in doc.select('article a[href*=".html"]') if '://' not in a['href']}
            assert all((pages/h).is_file() for h in hrefs), (lang, name, sorted(h for h in hrefs if not (pages/h).is_file()))
    assert page(pages_of(site, 'ko'), 'index').select_one('article a[href="../90_checks.html"]')
    assert page(pages_of(site, 'ko'), '07_learner').select_one('h2[id="옵티마이저"]'), "Korean anchors keep their Hangul"

def small_notebook(path, *cells):
    "Write a notebook of `cells` (markdown, or code where it starts with `>>> `) to `path`; return it."
    new = lambda s: nbformat.v4.new_code_cell(s[4:]) if s.startswith('>>> ') else nbformat.v4.new_markdown_cell(s)
    nb = nbformat.v4.new_notebook(cells=[new(s) for s in cells])
    path.parent.mkdir(exist_ok=True)
    nbformat.write(nb, path)
    return nb

def test_rebuild_swaps_the_whole_site(tmp_path):
    nbs, out = tmp_path/'nbs', tmp_path/'_site'
    small_notebook(nbs/'index.ipynb', '# Small', 'See [the data](01_data.ipynb).')
    small_notebook(nbs/'01_data.ipynb', '# The data', '>>> 1 + 1')
    tool()['build_site'](nbs, out)
    (out/'stale.html').write_text('from an older build')
    tool()['build_site'](nbs, out)
    assert sorted(p.name for p in out.glob('*.html')) == ['01_data.html', '404.html', 'index.html']
    assert page(out, 'index').select_one('article a[href="01_data.html"]')
    # A notebook that cannot be read stops the build and leaves the last good site as it was.
    (nbs/'02_broken.ipynb').write_text('{"cells": [')
    with pytest.raises(Exception): tool()['build_site'](nbs, out)
    assert sorted(p.name for p in out.glob('*.html')) == ['01_data.html', '404.html', 'index.html']
    assert sorted(p.name for p in tmp_path.iterdir()) == ['_site', 'nbs'], "temporary folders were left behind"
    # ...and the command says so in one line.
    r = subprocess.run([sys.executable, ROOT/'tools'/'build_site.py', '--nbs', nbs, '--out', out], capture_output=True, text=True)
    assert r.returncode == 1 and r.stderr.startswith('build_site: error:') and 'Traceback' not in r.stderr, r.stderr

def test_reader_source():
    src = tool()['reader_source']
    assert src('#| hide\nimport warnings') is None
    assert src('#| export\ndef f(): pass') == 'def f(): pass'
    assert src('#| default_exp data') == ''
    assert src("test_eq(f(1), 2)\ntest_fail(lambda: f('a'), contains='number')\nassert f(0) == 0") is None
    assert src('from fastcore.test import test_eq\ntest_close(1, 1.0)') is None
    assert src('x = f(1)\ntest_eq(x, 2)\nx') == 'x = f(1)\ntest_eq(x, 2)\nx'          # mixed cells keep their lines
    assert src("#| export\n__all__ = ['f']\nfrom m import *\n__all__ += ['g',\n 'h']") == 'from m import *'
    assert src('%time f(1)') == '%time f(1)'                                          # magics show as they are
    assert src('#| echo: false\nplt.plot([1, 2])') == ''                                 # the figure, not its code

def test_typeset():
    tex = tool()['typeset']
    out = tex(r'The map $f(x)=x^2$, and $$\log \sum_j e^{x_j}$$ shown.')
    assert out.count('<math') == 2 and 'display="block"' in out and '$' not in out
    keep = r'Code `x = $a$` and ```\n$b$\n``` keep it; $5 and $6 are prices; \$x\$ is escaped.'
    assert tex(keep) == keep

def test_colab_link_and_install_cell_come_from_one_setting():
    "settings.ini's git_url is the one place: the Colab link and the install cell of every teaching notebook use it."
    sys.path.insert(0, str(ROOT/'tools'))
    from learner_cell import colab_url, install_cell
    assert colab_url() == '', "settings.ini's git_url is not a public GitHub repository: no Colab link"
    cfg = {'git_url': 'https://github.com/o/r', 'branch': 'main', 'nbs_path': 'nbs'}
    assert colab_url(cfg) == 'https://colab.research.google.com/github/o/r/blob/main/nbs'
    assert install_cell(cfg).endswith('%pip install -q git+https://github.com/o/r')
    note = tool()['how_to_run'](Path('nbs/08_nonlinearity.ipynb'), 'https://colab.research.google.com/github/o/r/blob/main/nbs/')
    assert 'href="https://colab.research.google.com/github/o/r/blob/main/nbs/08_nonlinearity.ipynb"' in note

def warnings_of(caplog): return '\n'.join(r.getMessage() for r in caplog.records if r.levelname == 'WARNING')

def test_links_anchors_folds_and_widgets(tmp_path, caplog):
    nbs, out = tmp_path/'nbs', tmp_path/'_site'
    small_notebook(nbs/'index.ipynb', '# Small', '## Running the course', 'Then [links](02_links.ipynb).')
    nb = small_notebook(nbs/'02_links.ipynb', '# Links and folds',
        '## `DataLoaders` and the `Learner`\n\nBack to [running it](index.ipynb#running-the-course), '
        'or [here](#dataloaders-and-the-learner).',
        '<details>\n<summary>Why?</summary>\n\nBecause.\n</details>',
        '>>> import ipywidgets; slider')
    nb.cells[-1].outputs = [nbformat.v4.new_output('display_data', data={
        'application/vnd.jupyter.widget-view+json': {'model_id': 'abc', 'version_major': 2, 'version_minor': 0},
        'text/plain': 'IntSlider(value=3)'})]
    nb.metadata['widgets'] = {'application/vnd.jupyter.widget-state+json': {'state': {}, 'version_major': 2, 'version_minor': 0}}
    nb.cells[1].source += ' See [nowhere](index.ipynb#no-such-heading).'
    nbformat.write(nb, nbs/'02_links.ipynb')
    tool()['build_site'](nbs, out)
    # The one link to a heading that is not there is reported; the others are not.
    assert warnings_of(caplog).count('links to') == 1
    assert '02_links.html links to index.html#no-such-heading' in warnings_of(caplog)
    doc = page(out, '02_links')
    assert doc.select_one('h2#dataloaders-and-the-learner'), "anchors follow Python-Markdown's slugify"
    assert doc.select_one('a[href="index.html#running-the-course"]')
    assert doc.select_one('nav.md-nav--secondary a[href="#dataloaders-and-the-learner"]'), "the TOC links the real anchor"
    assert doc.select_one('details summary').get_text() == 'Why?'
    assert 'IntSlider(value=3)' in doc.get_text() and 'widget-state' not in str(doc)
    run_it = doc.select_one('.run-it').get_text()
    assert 'make lab' in run_it and '02_links.ipynb' in run_it and 'Colab' not in run_it

@LANGS
def test_pages_hold_prose_code_and_outputs(site, lang):
    pages = pages_of(site, lang)
    for name in chapters(site, lang):
        doc = page(pages, name)
        assert h1(doc) == title_of(site, name, lang)
        assert doc.title.string.startswith(title_of(site, name, lang))
        assert doc.select('.jp-MarkdownCell') and doc.select('.jp-CodeCell .jp-InputArea'), name
        assert doc.select('.jp-OutputArea-output'), f"{name}.ipynb holds no outputs: execute it before it is published"
        assert not doc.select('script[src^="http"], link[href^="http"]'), f"{name}.html loads something from the network"
        assert posixpath.join(FOLDER[lang], f'{name}.ipynb') in doc.select_one('.run-it').get_text()
    doc = page(pages, CHAPTER)
    code = '\n'.join(c.get_text() for c in doc.select('.jp-InputArea'))
    assert 'def load_sample(' in code and 'book_threes.shape' in code      # exported and teaching cells both show
    assert '#|' not in code                                                 # directives are for nbdev, not readers
    assert 'filterwarnings' not in code                                     # the `#| hide` cell is gone
    assert 'test_eq(' not in code and 'assert ' not in code                 # tests live in hidden cells
    assert 'test_eq(tensor(im3)' not in code                                # a cell of tests only is gone
    assert 'torch.Size([6131, 28, 28])' in doc.get_text()                   # outputs come from the committed notebook
    assert doc.select('.jp-OutputArea-output img[src^="data:image/png;base64,"]')  # figures are embedded
    assert '__all__' not in '\n'.join(c.get_text() for c in page(pages, 'index').select('.jp-InputArea'))

@LANGS
def test_navigation(site, lang):
    pages = pages_of(site, lang)
    names = ['index', *chapters(site, lang)]
    for i, name in enumerate(names):
        doc = page(pages, name)
        hrefs = [a['href'] for a in doc.select('nav.md-nav--primary a.md-nav__link') if a['href'].endswith('.html')]
        assert list(dict.fromkeys(hrefs)) == [f'{n}.html' for n in names], "the nav is index, then filename order"
        prev, next = doc.select_one('a.md-footer__link--prev'), doc.select_one('a.md-footer__link--next')
        assert (prev['href'] if prev else None) == (f'{names[i-1]}.html' if i > 0 else None)
        assert (next['href'] if next else None) == (f'{names[i+1]}.html' if i+1 < len(names) else None)
    overview = {a['href'] for a in page(pages, 'index').select('article .jp-MarkdownCell a')}
    assert {f'{c}.html' for c in chapters(site, lang)} <= overview, "the overview must link every chapter"

@LANGS
def test_formulas_are_mathml(site, lang):
    with_tex = [n for n in chapters(site, lang) if TEX.search(' '.join(c.source for c in nbformat.read(nbs_of(site, lang)/f'{n}.ipynb', 4).cells
                                                                       if c.cell_type == 'markdown'))]
    assert MATH_CHAPTER in with_tex
    for name in with_tex:
        prose = page(pages_of(site, lang), name).select('article .jp-MarkdownCell')
        assert any(p.select('math') for p in prose), name
        assert not [t for p in prose for t in TEX.findall(p.get_text())], f"{name}.html shows TeX"

@LANGS
def test_language_switch(site, lang):
    "Each page says its language (Material's labels too) and switches to itself in the other language, else to its index."
    here, there = pages_of(site, lang), pages_of(site, other(lang))
    for name in ['index', *chapters(site, lang)]:
        doc = page(here, name)
        assert doc.html['lang'] == lang, name
        assert doc.select_one('input.md-search__input')['placeholder'] == {'en': 'Search', 'ko': '검색'}[lang]
        switch = {a['hreflang']: a['href'] for a in doc.select('.md-header a.md-select__link[hreflang]')}
        assert set(switch) == set(FOLDER), f"{name}.html has no language switch"
        same = name if (there/f'{name}.html').is_file() else 'index'
        assert (here/switch[other(lang)]).resolve() == (there/f'{same}.html').resolve(), (name, switch)
        assert (here/switch[lang]).resolve() == (here/f'{name}.html').resolve(), (name, switch)

# --- in the browser ------------------------------------------------------------------------------------

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
def browser(tmp_path_factory, pytestconfig):
    with chromium(tmp_path_factory.mktemp('chromium')) as driver:
        yield driver
    if SHOT_NAMES:  # where to look, past pytest's capture
        with pytestconfig.pluginmanager.get_plugin('capturemanager').global_and_fixture_disabled():
            print(f"\nsite screenshots: {SHOTS}/{{{','.join(SHOT_NAMES)}}}.png")

SHOT_NAMES = []

def shoot(driver, name):
    "Keep a screenshot in _site_shots/ (not committed); return its PNG's (width, height)."
    SHOTS.mkdir(exist_ok=True)
    path = SHOTS/f'{name}.png'
    driver.save_screenshot(path)
    SHOT_NAMES.append(name)
    data = path.read_bytes()
    assert data[:8] == b'\x89PNG\r\n\x1a\n', "not a PNG"
    return struct.unpack('>II', data[16:24])

def wait_for(condition, seconds=15):
    "Poll `condition` until it is true or `seconds` pass; return its last value."
    end = time.monotonic() + seconds
    while not (value := condition()) and time.monotonic() < end: time.sleep(0.2)
    return value

def url(server, lang, name): return f'{server}/{posixpath.join(FOLDER[lang], name)}.html'
def shot(name, lang): return name if lang == 'en' else f'{name}-{lang}'

def visible_figures(driver):
    "How many output images the browser decoded."
    return driver.execute_script(
        "return [...document.querySelectorAll('.jp-OutputArea-output img')].filter(i => i.complete && i.naturalWidth > 0).length")

@LANGS
def test_index_in_browser(browser, server, site, lang):
    from selenium.webdriver.common.by import By
    browser.get(url(server, lang, 'index'))
    assert browser.find_element(By.CSS_SELECTOR, 'article h1').text.strip('¶') == title_of(site, 'index', lang)
    assert shoot(browser, shot('index', lang))[0] > 800
    # Follow the overview's link to the first chapter, as a reader would.
    browser.find_element(By.CSS_SELECTOR, f'article a[href="{CHAPTER}.html"]').click()
    assert browser.current_url == url(server, lang, CHAPTER)
    assert browser.find_element(By.CSS_SELECTOR, 'article h1').text.strip('¶') == title_of(site, CHAPTER, lang)

@LANGS
def test_chapter_in_browser(browser, server, site, lang):
    from selenium.webdriver.common.by import By
    browser.get(url(server, lang, CHAPTER))
    assert browser.title.startswith(title_of(site, CHAPTER, lang))
    code = [e.text for e in browser.find_elements(By.CSS_SELECTOR, '.jp-CodeCell .jp-InputArea')]
    assert len(code) > 10 and any('load_digit(' in c for c in code)
    assert visible_figures(browser) >= 1
    width, height = shoot(browser, shot('chapter', lang))
    assert width > 800 and height > 600
    assert browser.find_elements(By.CSS_SELECTOR, 'clipboard-copy, .md-clipboard'), "code has a copy button"
    assert browser.find_element(By.CSS_SELECTOR, '.md-sidebar--secondary nav.md-nav--secondary').is_displayed(), \
        "an in-page TOC at the side"
    # The next-chapter link leads on.
    nxt = browser.find_element(By.CSS_SELECTOR, 'a.md-footer__link--next')
    href = nxt.get_attribute('href')
    nxt.click()
    assert browser.current_url == href and browser.find_element(By.CSS_SELECTOR, 'article h1').text

@LANGS
def test_formulas_in_browser(browser, server, lang):
    browser.get(url(server, lang, MATH_CHAPTER))
    prose = browser.execute_script("return [...document.querySelectorAll('article .jp-MarkdownCell')].map(e => e.innerText).join('\\n')")
    assert not TEX.findall(prose), "raw TeX is visible"
    drawn = browser.execute_script("""const m = [...document.querySelectorAll('article math')];
        m[0].scrollIntoView({block: 'center'});
        return m.filter(e => e.getBoundingClientRect().width > 0).length""")
    assert drawn > 0, "the formulas take no room: the browser did not draw them"
    shoot(browser, shot('formulas', lang))

@LANGS
def test_phone(browser, server, lang):
    from selenium.webdriver.common.by import By
    browser.set_window_size(390, 844)
    try:
        browser.get(url(server, lang, MATH_CHAPTER))
        inner = browser.execute_script('return window.innerHeight')
        title = browser.find_element(By.CSS_SELECTOR, 'article h1')
        assert browser.execute_script('return arguments[0].getBoundingClientRect().bottom', title) < inner, \
            "the chapter's title is not on the first screen"
        shoot(browser, shot('phone', lang))
        nav = browser.find_element(By.CSS_SELECTOR, 'nav.md-nav--primary')
        assert browser.execute_script('return arguments[0].getBoundingClientRect().right', nav) <= 0, "the chapter list is folded away"
        browser.find_element(By.CSS_SELECTOR, 'label.md-header__button[for="__drawer"]').click()  # the menu button
        assert wait_for(lambda: browser.execute_script('return arguments[0].getBoundingClientRect().left', nav) >= 0)
        assert browser.find_element(By.CSS_SELECTOR, f'nav.md-nav--primary a[href="{CHAPTER}.html"]').is_displayed()
        shoot(browser, shot('phone-menu', lang))
    finally: browser.set_window_size(1280, 1000)

# "rectified linear unit" is in notebook 08 only; Korean, 정류 선형 유닛, in 08 and the questionnaire's answers.
@pytest.mark.parametrize('lang, word', [('en', 'rectified'), ('ko', '정류')])
def test_search(browser, server, lang, word):
    from selenium.webdriver.common.by import By
    browser.get(url(server, lang, 'index'))
    box = browser.find_element(By.CSS_SELECTOR, 'input.md-search__input')
    box.click()
    box.send_keys(word)
    hits = lambda: [a.get_attribute('href') for a in browser.find_elements(By.CSS_SELECTOR, '.md-search-result__link')]
    assert wait_for(lambda: any(h.startswith(url(server, lang, MATH_CHAPTER)) for h in hits())), f"search found {hits()}"
    shoot(browser, shot('search', lang))

@LANGS
def test_dark_mode(browser, server, lang):
    from selenium.webdriver.common.by import By
    scheme = lambda: browser.execute_script('return document.body.getAttribute("data-md-color-scheme")')
    background = lambda: browser.execute_script('return getComputedStyle(document.body).backgroundColor')
    def dark(rgb): return sum(map(int, re.findall(r'\d+', rgb)[:3])) < 3*100
    def forget():  # a reader who never touched the toggle
        browser.get('about:blank')
        browser.execute_cdp_cmd('Storage.clearDataForOrigin', {'origin': server, 'storageTypes': 'local_storage'})
    forget()
    browser.get(url(server, lang, CHAPTER))
    assert wait_for(lambda: scheme() == 'default' and not dark(background())), (scheme(), background())
    browser.execute_cdp_cmd('Emulation.setEmulatedMedia', {'features': [{'name': 'prefers-color-scheme', 'value': 'dark'}]})
    try:
        browser.get(url(server, lang, CHAPTER))
        assert wait_for(lambda: scheme() == 'slate' and dark(background())), (scheme(), background())
        shoot(browser, shot('dark', lang))
        # The toggle overrides the browser's preference: light, then dark, then the browser's again.
        toggle = lambda: browser.find_element(By.CSS_SELECTOR, 'form[data-md-component="palette"] label:not([hidden])').click()
        toggle()
        assert wait_for(lambda: scheme() == 'default' and not dark(background()))
        toggle()
        assert wait_for(lambda: scheme() == 'slate')
    finally:
        browser.execute_cdp_cmd('Emulation.setEmulatedMedia', {'features': []})
        forget()

@LANGS
def test_language_switch_in_browser(browser, server, site, lang):
    "The header's switch leads from a chapter to the same chapter in the other language."
    from selenium.webdriver.common.by import By
    browser.get(url(server, lang, CHAPTER))
    browser.find_element(By.CSS_SELECTOR, '.md-header .md-select button').click()  # the list opens on focus
    link = browser.find_element(By.CSS_SELECTOR, f'.md-header a.md-select__link[hreflang="{other(lang)}"]')
    assert wait_for(link.is_displayed), "the language list does not open"
    shoot(browser, shot('switch', lang))
    link.click()
    assert wait_for(lambda: browser.current_url == url(server, other(lang), CHAPTER)), browser.current_url
    assert browser.find_element(By.TAG_NAME, 'html').get_attribute('lang') == other(lang)
    assert browser.find_element(By.CSS_SELECTOR, 'article h1').text.strip('¶') == title_of(site, CHAPTER, other(lang))
