#!/usr/bin/env python
"""Render the course to a static site with MkDocs: `python tools/build_site.py [--nbs nbs] [--out _site]`.

MkDocs with the Material theme (mkdocs.yml) and mkdocs-jupyter does the site: one page per notebook from
the outputs committed in it (nothing is executed), search, light and dark, phone navigation, copy buttons
and an in-page table of contents. This script only prepares what the readers see: it copies
`index.ipynb` and `[0-9]*.ipynb` into a staging folder, leaving out `#| hide` cells, nbdev's directive
lines, `__all__` and cells that only test, typesets `$...$` as MathML (no script, no network), says under
each chapter's title how to run it, and lists the pages in filename order. Where `nbs/ko/` holds the Korean
edition, a second build makes it into `out/ko/` (Material's labels and search in Korean, `<html lang="ko">`), and
Material's `extra.alternate` puts a language switch in every page's header. The site is built in a temporary
folder next to `out`, then swapped into place, so `out` is never half-written.
tools/site_hooks.py (named in mkdocs.yml) finishes each page: links to notebooks, anchors and the TOC."""
import ast, logging, posixpath, re, shutil, sys, tempfile
from pathlib import Path

import nbformat, yaml
from fastcore.script import call_parse
from latex2mathml.converter import convert as tex2mathml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT/'tools'))
from learner_cell import colab_url   # the Colab link, from settings.ini's git_url

DIRECTIVE = re.compile(r'\s*#\|\s*(\w+)')  # nbdev's `#| export`, `#| hide`, `#| default_exp data`, ...
TEST_CALL = re.compile(r'test_\w*$')        # fastcore.test's test_eq, test_fail, test_close, ...
WIDGET = 'application/vnd.jupyter.widget-view+json'

# The editions: the language's folder under nbs/ and under the site ('' for English), and what the build writes.
EDITIONS = {
    'en': dict(folder='', name='English', overview='Overview', run='Run this chapter',
               how="In the project's folder, <code>make lab</code> opens JupyterLab on the notebooks; this chapter is <code>{}</code>.",
               colab='Or <a href="{}">open it in Colab</a>.',
               live='*Interactive in Jupyter: run this notebook there to use it (the figure above shows the defaults).*'),
    'ko': dict(folder='ko', name='한국어', overview='개요', run='이 장 실행하기',
               how='프로젝트 폴더에서 <code>make lab</code>을 실행하면 JupyterLab에서 노트북이 열립니다. 이 장은 <code>{}</code>입니다.',
               colab='<a href="{}">Colab에서 열 수도 있습니다</a>.',
               live='*Jupyter에서 이 노트북을 실행하면 직접 조작할 수 있습니다 (위 그림은 기본값입니다).*'),
}

# --- code cells: what nbdev and the tests need, readers do not ----------------------------------------

def is_test(stmt):
    "Is `stmt` an `assert`, a call of a `test_*` function, or an import of fastcore.test?"
    if isinstance(stmt, ast.Assert): return True
    if isinstance(stmt, ast.ImportFrom): return stmt.module == 'fastcore.test'
    return (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call) and isinstance(stmt.value.func, ast.Name)
            and bool(TEST_CALL.match(stmt.value.func.id)))

def is_dunder_all(stmt):
    "Is `stmt` an assignment to `__all__` (nbdev's export plumbing)?"
    targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target] if isinstance(stmt, ast.AugAssign) else []
    return any(isinstance(t, ast.Name) and t.id == '__all__' for t in targets)

ECHO_FALSE = re.compile(r'\s*#\|\s*echo:\s*false\s*$')  # Quarto's and nbdev's: show the output, not the code

def reader_source(source):
    "The code a reader sees: no leading directives, no `__all__` lines; '' for `#| echo: false`; None when hidden or only tests."
    lines = source.splitlines()
    n = 0
    while n < len(lines) and (DIRECTIVE.match(lines[n]) or not lines[n].strip()): n += 1
    if any(DIRECTIVE.match(l)[1] == 'hide' for l in lines[:n] if DIRECTIVE.match(l)): return None
    if any(ECHO_FALSE.match(l) for l in lines[:n]): return ''
    code = '\n'.join(lines[n:])
    try: stmts = ast.parse(code).body
    except SyntaxError: return code.strip('\n')  # magics (`%time`) and the like: shown as they are
    if stmts and all(is_test(s) for s in stmts): return None
    drop = {i for s in stmts if is_dunder_all(s) for i in range(s.lineno-1, s.end_lineno)}
    return '\n'.join(l for i, l in enumerate(code.splitlines()) if i not in drop).strip('\n')

LIVE_ONLY = ('interactive(', 'DigitPad(', 'VBox(', 'HBox(')  # a widget's repr: nothing a reader can use

def static_outputs(outputs, lang='en'):
    "The outputs without live widget views: their static fallback (HTML, or text other than a bare repr), else a note."
    for o in outputs:
        data = o.get('data', {})
        if WIDGET not in data: continue
        del data[WIDGET]
        if data.get('text/plain', '').startswith(LIVE_ONLY) and 'text/html' not in data and 'image/png' not in data:
            data.clear(); data['text/markdown'] = EDITIONS[lang]['live']
    return [o for o in outputs if o.get('data', True)]

# --- markdown cells: formulas as MathML ------------------------------------------------------------------

# Code (fenced or inline) is left alone; `$$...$$` is display math, `$x$` inline math (no space inside the dollars,
# no ASCII letter or digit against them, though Korean puts its particles there: `$x$를`).
MATH = re.compile(r'(?P<code>```.*?```|`[^`\n]+`)|\$\$(?P<display>.+?)\$\$|(?<![\\$A-Za-z0-9_])\$(?P<inline>[^\s$](?:[^$\n]*?[^\s$\\])?)\$(?![A-Za-z0-9_$])', re.S)

def typeset(markdown):
    "`markdown` with its TeX formulas replaced by MathML, which browsers draw with no script."
    def sub(m):
        if m['code']: return m['code']
        tex, display = (m['display'], 'block') if m['display'] else (m['inline'], 'inline')
        try: return tex2mathml(tex.strip(), display=display).replace('\n', ' ')
        except Exception as e:
            print(f"warning: cannot typeset ${tex}$ ({e}); it is shown as TeX", file=sys.stderr)
            return m[0]
    return MATH.sub(sub, markdown)

# --- pages ---------------------------------------------------------------------------------------------

def title_of(nb, path):
    "The notebook's title: its first `# ` heading, else its file name."
    return next((m[1].strip() for c in nb.cells if c.cell_type == 'markdown'
                 if (m := re.match(r'#\s+(.+)', c.source))), path.stem)

def how_to_run(path, colab, lang='en'):
    "A note for under a chapter's title: how to run the notebook, and a Colab link where the repository is public."
    ed, name = EDITIONS[lang], posixpath.join(EDITIONS[lang]['folder'], path.name)  # as nbs/ holds it
    note = (f'<div class="admonition tip run-it"><p class="admonition-title">{ed["run"]}</p>'
            f'<p>{ed["how"].format(name)}')
    if colab: note += ' ' + ed['colab'].format(f'{colab.rstrip("/")}/{name}')
    return note + '</p></div>'

# Links to notebooks in markdown: `[text](07_learner.ipynb#옵티마이저)`.
NB_REF = re.compile(r'(\]\(\s*)([\w.-]+\.ipynb)')

def relink(markdown, folder):
    "`markdown` with links to notebooks that `folder` lacks pointed one folder up (Korean has no appendices)."
    return NB_REF.sub(lambda m: m[0] if (folder/m[2]).is_file() else f'{m[1]}../{m[2]}', markdown)

def for_readers(path, colab='', lang='en'):
    "The notebook at `path` as readers see it."
    nb = nbformat.read(path, as_version=4)
    cells = []
    for cell in nb.cells:
        if cell.cell_type == 'code':
            cell.source = reader_source(cell.source)
            if cell.source is None or not (cell.source or cell.outputs): continue
            if not cell.source: cell.metadata['tags'] = ['remove_input']   # mkdocs.yml's remove_tag_config: no empty box
            cell.outputs = static_outputs(cell.outputs, lang)
        elif cell.cell_type == 'markdown':
            cell.source = typeset(relink(cell.source, path.parent) if lang != 'en' else cell.source)
        cells.append(cell)
    if path.stem != 'index':  # under the title, or first when the notebook has none
        at = next((i+1 for i, c in enumerate(cells) if c.cell_type == 'markdown' and c.source.startswith('# ')), 0)
        cells.insert(at, nbformat.v4.new_markdown_cell(how_to_run(path, colab, lang)))
    nb.cells = cells
    nb.metadata.pop('widgets', None)  # widget state would load the widget manager from a CDN
    return nb

def notebooks(nbs):
    "index.ipynb first, then the numbered notebooks in filename order."
    nbs = Path(nbs)
    if not (nbs/'index.ipynb').is_file(): raise FileNotFoundError(f"{nbs}/index.ipynb does not exist")
    return [nbs/'index.ipynb', *sorted(nbs.glob('[0-9]*.ipynb'))]

def quiet_mkdocs():
    "MkDocs' own warnings on stderr, one line each; its progress messages not."
    log = logging.getLogger('mkdocs')
    if not log.handlers:
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter('%(levelname)s: %(message)s'))
        log.addHandler(h)
    log.setLevel(logging.WARNING)

def editions(nbs):
    "The languages whose notebooks `nbs` holds: English, and Korean where `nbs/ko/index.ipynb` exists."
    return [lang for lang, ed in EDITIONS.items() if lang == 'en' or (Path(nbs)/ed['folder']/'index.ipynb').is_file()]

def overrides(config, lang, pages):
    "mkdocs.yml's settings that `lang`'s build changes: the theme's and search's language, and the language switch."
    cfg = yaml.safe_load(Path(config).read_text(encoding='utf-8'))
    here = EDITIONS[lang]['folder'] or '.'
    # One link per language, to its index; tools/site_hooks.py points each page's at the same page where there is one.
    alternate = [dict(name=EDITIONS[l]['name'], lang=l, pages=pages[l],
                      link=posixpath.relpath(posixpath.join(EDITIONS[l]['folder'], 'index.html'), here)) for l in pages]
    search = {'search': {'lang': [lang]}}   # lunr's Korean: Hangul words, and the search labels in Korean
    return dict(theme={**cfg['theme'], 'language': lang},
                plugins=[search if p == 'search' else p for p in cfg['plugins']],
                extra={**cfg.get('extra', {}), 'alternate': alternate if len(pages) > 1 else []})

def build_site(nbs='nbs', out='_site', config=ROOT/'mkdocs.yml'):
    "Render `nbs/` to `out/` and `nbs/ko/` to `out/ko/` with MkDocs, replacing `out` as a whole; return the navs."
    from mkdocs.commands.build import build
    from mkdocs.config import load_config
    quiet_mkdocs()
    out, nbs = Path(out), Path(nbs)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f'.{out.name}-docs-', dir=out.parent))
    tmp = Path(tempfile.mkdtemp(prefix=f'.{out.name}-new-', dir=out.parent))
    try:
        colab = colab_url()   # from settings.ini's git_url, as the notebooks' install cell is
        langs = editions(nbs)
        paths = {lang: notebooks(nbs/EDITIONS[lang]['folder']) for lang in langs}
        pages = {lang: [f'{p.stem}.html' for p in paths[lang]] for lang in langs}
        navs = {}
        for lang in langs:  # English first: its build empties `tmp`, Korean's then fills tmp/ko
            docs, site = stage/lang, tmp/EDITIONS[lang]['folder']
            shutil.copytree(ROOT/'docs', docs)  # the site's stylesheet
            navs[lang] = []
            for path in paths[lang]:
                nb = for_readers(path, colab, lang)
                nbformat.write(nb, docs/path.name)
                navs[lang].append({(EDITIONS[lang]['overview'] if path.stem == 'index' else title_of(nb, path)): path.name})
            build(load_config(str(config), docs_dir=str(docs), site_dir=str(site), nav=navs[lang], **overrides(config, lang, pages)))
        tmp.chmod(0o755)  # mkdtemp makes it private; a web server must be able to read the site
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True); raise
    finally: shutil.rmtree(stage, ignore_errors=True)
    # Swap: the old site is renamed away and the new one renamed into place.
    old = Path(tempfile.mkdtemp(prefix=f'.{out.name}-old-', dir=out.parent))
    if out.exists(): out.rename(old/out.name)
    tmp.rename(out)
    shutil.rmtree(old)
    return navs

@call_parse
def main(nbs:str='nbs',    # folder holding index.ipynb and the numbered notebooks
         out:str='_site'): # folder to (re)create with the site
    "Render the executed course notebooks to a static site."
    from mkdocs.exceptions import MkDocsException
    try: navs = build_site(nbs, out)
    except (OSError, ValueError, nbformat.ValidationError, MkDocsException) as e:  # a missing folder, a broken notebook
        sys.exit(f"build_site: error: {e}")
    print(f"{sum(map(len, navs.values()))} pages in {out}/ ({', '.join(f'{len(n)} {l}' for l, n in navs.items())}; "
          f"open {out}/index.html, or `python -m http.server -d {out}` for search)")
