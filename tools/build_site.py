#!/usr/bin/env python
"""Render the course to a static HTML site: `python tools/build_site.py [--nbs nbs] [--out _site]`.

One page per notebook, from the committed notebooks and the outputs they hold (nothing is executed):
`index.html` from `index.ipynb`, then a page per numbered chapter, each with a sidebar listing the
chapters and previous / home / next links. Cells marked `#| hide` are left out, nbdev's other
directive lines (`#| export`, `#| default_exp ...`) are stripped from the code shown, and links
to `*.ipynb` become links to the `.html` pages. Figures stay embedded in the pages as data URIs.
The site is built in a temporary folder next to `out`, then swapped into place."""
import re, shutil, sys, tempfile
from pathlib import Path

import nbformat
from fastcore.script import call_parse
from jinja2 import DictLoader
from nbconvert import HTMLExporter

# nbconvert's JupyterLab template, plus the site's navigation. `resources.site` is filled in by `render`.
TEMPLATE = r"""{%- extends 'lab/index.html.j2' -%}
{% block html_head_js_requirejs %}{% endblock %}{# no widgets here, so no require.js from a CDN #}
{% block extra_css %}<style>{{ resources.site.css }}</style>{% endblock %}
{%- block body_header -%}
<body class="jp-Notebook" data-jp-theme-light="true" data-jp-theme-name="JupyterLab Light">
<nav class="site-nav" aria-label="Chapters">
  <a class="site-home" href="index.html">{{ resources.site.title }}</a>
  <ol>{% for p in resources.site.chapters %}
    <li{% if p.href == resources.site.page.href %} class="current" aria-current="page"{% endif %}><a href="{{ p.href }}">{{ p.label }}</a></li>{% endfor %}
  </ol>
</nav>
<main>
{%- endblock body_header -%}
{% block body_footer %}
<nav class="site-pager" aria-label="Previous and next">
  {% set prev, next = resources.site.prev, resources.site.next %}
  <span>{% if prev %}<a rel="prev" href="{{ prev.href }}">← {{ prev.label }}</a>{% endif %}</span>
  <a rel="home" href="index.html">Home</a>
  <span>{% if next %}<a rel="next" href="{{ next.href }}">{{ next.label }} →</a>{% endif %}</span>
</nav>
</main>
</body>
{% endblock body_footer %}
"""

CSS = """
body.jp-Notebook { margin: 0; padding: 1.5rem 2rem 3rem 18rem; max-width: 62rem; }
.site-nav { position: fixed; top: 0; left: 0; bottom: 0; width: 15rem; overflow-y: auto; padding: 1.5rem 1rem;
  box-sizing: border-box; background: #f5f5f5; border-right: 1px solid #ddd; font: 14px/1.4 var(--jp-ui-font-family); }
.site-nav a { color: #333; text-decoration: none; }
.site-nav a:hover { text-decoration: underline; }
.site-home { display: block; font-size: 1.3em; font-weight: 600; margin-bottom: 1rem; }
.site-nav ol { list-style: none; padding: 0; margin: 0; }
.site-nav li { margin: 0 0 .6rem; }
.site-nav li.current a { font-weight: 600; color: #1565c0; }
body .jp-InputArea-editor { min-width: 0; overflow-x: auto; }  /* long code lines scroll instead of being cut */
.site-pager { display: flex; justify-content: space-between; gap: 1rem; margin-top: 3rem; padding-top: 1rem;
  border-top: 1px solid #ddd; font: 15px var(--jp-ui-font-family); }
.site-pager span { flex: 1; }
.site-pager span:last-child { text-align: right; }
@media (max-width: 50rem) {
  body.jp-Notebook { padding: 1rem; }
  .site-nav { position: static; width: auto; border: 0; border-bottom: 1px solid #ddd; }
}
"""

DIRECTIVE = re.compile(r'\s*#\|\s*(\w+)')  # nbdev's `#| export`, `#| hide`, `#| default_exp data`, ...
NB_LINK = re.compile(r'href="(?![a-zA-Z][\w+.-]*:|/)([^"#?]*)\.ipynb(?=[#"])')  # relative links to notebooks
LOCAL_HREF = re.compile(r'href="(?![a-zA-Z][\w+.-]*:|/|#)([^"#?]+)')

def strip_directives(nb):
    "Drop `#| hide` cells and the directive lines of the others; drop cells that held only directives."
    cells = []
    for cell in nb.cells:
        if cell.cell_type == 'code':
            lines = cell.source.splitlines()
            n = 0
            while n < len(lines) and DIRECTIVE.match(lines[n]): n += 1
            if any(DIRECTIVE.match(l)[1] == 'hide' for l in lines[:n]): continue
            cell.source = '\n'.join(lines[n:]).strip('\n')
            if not cell.source and not cell.outputs: continue
        cells.append(cell)
    nb.cells = cells
    return nb

def page_info(path):
    "The page a notebook becomes: its file name, title (its first `# ` heading) and label (`01 The data...`, or `Overview`)."
    nb = nbformat.read(path, as_version=4)
    title = next((m[1].strip() for c in nb.cells if c.cell_type == 'markdown'
                  if (m := re.match(r'#\s+(.+)', c.source))), path.stem)
    num = path.stem.split('_')[0] if path.stem[0].isdigit() else ''
    return dict(nb=nb, href=f'{path.stem}.html', title=title, label=f'{num} {title}' if num else 'Overview')

def render(exporter, page, site):
    "The HTML of one page."
    nb = strip_directives(page['nb'])
    nb.metadata['title'] = page['title'] if page['href'] == 'index.html' else f"{page['title']} · {site['title']}"
    html, _ = exporter.from_notebook_node(nb, resources=dict(site=dict(site, page=page)))
    return NB_LINK.sub(r'href="\1.html', html)

def build_site(nbs='nbs', out='_site'):
    "Render `nbs/index.ipynb` and `nbs/[0-9]*.ipynb` to `out/`, replacing it as a whole; return the list of pages."
    nbs, out = Path(nbs), Path(out)
    pages = [page_info(p) for p in [nbs/'index.ipynb', *sorted(nbs.glob('[0-9]*.ipynb'))]]
    site = dict(title=pages[0]['title'], chapters=pages[1:], css=CSS)
    exporter = HTMLExporter(template_name='lab', extra_loaders=[DictLoader({'site.html.j2': TEMPLATE})],
                            template_file='site.html.j2', exclude_input_prompt=True, exclude_output_prompt=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f'.{out.name}-new-', dir=out.parent))
    try:
        for i, page in enumerate(pages):
            prev, next = (pages[i-1] if i else None), (pages[i+1] if i+1 < len(pages) else None)
            html = render(exporter, page, dict(site, prev=prev, next=next))
            (tmp/page['href']).write_text(html, encoding='utf-8')
        for page in pages:  # a link to a notebook that does not exist (yet) is worth a warning, not a failure
            for href in LOCAL_HREF.findall((tmp/page['href']).read_text(encoding='utf-8')):
                if not (tmp/href).exists(): print(f"warning: {page['href']} links to missing {href}", file=sys.stderr)
        tmp.chmod(0o755)  # mkdtemp makes it private; a web server must be able to read the site
    except BaseException:
        shutil.rmtree(tmp); raise
    # Swap: the old site is renamed away and the new one renamed into place, so `out` is never half-written.
    old = Path(tempfile.mkdtemp(prefix=f'.{out.name}-old-', dir=out.parent))
    if out.exists(): out.rename(old/out.name)
    tmp.rename(out)
    shutil.rmtree(old)
    return pages

@call_parse
def main(nbs:str='nbs',    # folder holding index.ipynb and the numbered notebooks
         out:str='_site'): # folder to (re)create with the HTML pages
    "Render the executed course notebooks to a static HTML site."
    pages = build_site(nbs, out)
    print(f"{len(pages)} pages in {out}/: " + ' '.join(p['href'] for p in pages))
