"""MkDocs hooks (mkdocs.yml `hooks:`) that finish the pages mkdocs-jupyter renders from the course's notebooks.

mkdocs-jupyter turns a notebook into HTML with nbconvert, so MkDocs' own Markdown processing never sees it:
links to `other.ipynb#a-heading` are left as they are, and the table of contents it builds drops the code in
a heading (`DataLoaders` and the `Learner` → "and the") while the heading's anchor keeps it, and its anchors
drop Hangul. Here each page gets its links pointed at the pages, anchors that keep their Hangul (`#옵티마이저`, as
JupyterLab makes them), its TOC read from the anchors it really has, no MathJax or Mermaid from a
CDN (tools/build_site.py has already typeset the formulas as MathML), and nbconvert's 0.6 MB of CSS in one
shared file instead of in every page, and its language switch (mkdocs.yml's `extra.alternate`, which
tools/build_site.py fills in) pointed at the same page in the other language where there is one. Links to missing
pages or anchors are reported after the build, as MkDocs reports them for Markdown pages."""
import hashlib, html, logging, posixpath, re
from pathlib import Path
from urllib.parse import unquote

from mkdocs.structure.toc import get_toc

log = logging.getLogger('mkdocs.hooks.site')
MATHJAX = re.compile(r'<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->', re.S)
MERMAID = re.compile(r'<script type="module">(?:(?!</script>).)*?jp-Mermaid.*?</script>', re.S)  # imports from a CDN
STYLE = re.compile(r'<style type="text/css">(.{2000,}?)</style>', re.S)  # nbconvert's stylesheets, 0.6 MB a page
NB_LINK = re.compile(r'href="(?![a-zA-Z][\w+.-]*:|/)([^"#?]*)\.ipynb(#[^"]*)?"')  # relative links to notebooks
HEADING = re.compile(r'<h([1-6])[^>]*\bid="([^"]*)"[^>]*>(.*?)</h\1>', re.S)
ANCHOR_LINK = re.compile(r'<a class="anchor-link".*?</a>', re.S)
TAG = re.compile(r'<[^>]+>')
LOCAL_LINK = re.compile(r'href="(?![a-zA-Z][\w+.-]*:|/)([^"#?]*\.html)?(?:#([^"]*))?"')
ALTERNATE = re.compile(r'(<(?:a|link rel="alternate") href=")[^"]*(" hreflang="([\w-]+)")')  # Material's language switch

_anchors, _links, _styles = {}, {}, {}  # page -> its heading ids; page -> its local links; CSS file -> its text

def on_pre_build(config):
    _anchors.clear(); _links.clear(); _styles.clear()

def shared_style(m, page):
    "A link to a stylesheet file holding the `<style>` block `m`, written once for every page that has it."
    name = f"assets/notebook-{hashlib.sha256(m[1].encode()).hexdigest()[:12]}.css"
    _styles[name] = m[1]
    return f'<link rel="stylesheet" href="{posixpath.relpath(name, posixpath.dirname(page.file.dest_uri) or ".")}">'

def text_of(heading):
    "A heading's text, without its anchor link and tags."
    return html.unescape(TAG.sub('', ANCHOR_LINK.sub('', heading))).strip()

def slug(text):
    "An anchor as JupyterLab and GitHub make it: mkdocs-jupyter's, but keeping Hangul (it keeps only ASCII)."
    return re.sub(r'[-\s]+', '-', re.sub(r'[^\w\s-]', '', text).strip().lower())

def unicode_ids(content):
    "`content` with each heading's id (and anchor link) made by `slug`: `## 옵티마이저` gets `#옵티마이저`, not ``."
    def fix(m):
        new = slug(text_of(m[3]))
        return m[0] if new == m[2] else m[0].replace(f'id="{m[2]}"', f'id="{new}"', 1).replace(f'href="#{m[2]}"', f'href="#{new}"', 1)
    return HEADING.sub(fix, content)

def toc_tokens(content, depth=3):
    "The nested TOC tokens of the headings (h1 to h`depth`) in `content`, with the ids they really have."
    root = dict(level=0, children=[])
    stack = [root]
    for level, id_, inner in HEADING.findall(content):
        level = int(level)
        if level > depth: continue
        name = html.escape(text_of(inner))
        token = dict(level=level, id=id_, name=name, children=[])
        while stack[-1]['level'] >= level: stack.pop()
        stack[-1]['children'].append(token); stack.append(token)
    return root['children']

def on_page_content(content, page, config, files):
    "Point notebook links at pages, drop MathJax, keep Hangul in anchors, and make the TOC from the page's own anchors."
    if not page.file.src_path.endswith('.ipynb'): return content
    content = unicode_ids(MERMAID.sub('', MATHJAX.sub('', content)))
    content = STYLE.sub(lambda m: shared_style(m, page), content)
    content = NB_LINK.sub(lambda m: f'href="{m[1]}.html{m[2] or ""}"', content)
    page.toc = get_toc(toc_tokens(content, config.mdx_configs.get('toc', {}).get('toc_depth', 3)))
    _anchors[page.file.dest_uri] = {unquote(id_) for _, id_, _ in HEADING.findall(content)}
    _links[page.file.dest_uri] = LOCAL_LINK.findall(content)
    return content

def on_post_page(output, page, config):
    "Point the language switch at this page in each language that has it, else at that language's index."
    alts = {a['lang']: a for a in config.extra.get('alternate') or []}
    def switch(m):
        if m[3] not in alts: return m[0]
        alt, dest = alts[m[3]], page.file.dest_uri
        return m[1] + posixpath.join(posixpath.dirname(alt['link']), dest if dest in alt['pages'] else 'index.html') + m[2]
    return ALTERNATE.sub(switch, output)

def on_post_build(config):
    "Write the shared stylesheets; warn about links to pages or headings that the site does not have."
    for name, css in _styles.items(): (Path(config.site_dir)/name).write_text(css, encoding='utf-8')
    for src, links in _links.items():
        for href, anchor in links:
            dest = posixpath.normpath(posixpath.join(posixpath.dirname(src), href)) if href else src
            anchor = unquote(anchor)   # `#데이터-살펴보기` comes percent-encoded
            if dest.startswith('../'): continue   # another edition's page (Korean to the English appendices)
            if dest not in _anchors: log.warning(f"{src} links to {href}, which is not a page of the site")
            elif anchor and anchor not in _anchors[dest]:
                log.warning(f"{src} links to {href}#{anchor}, but {dest} has no heading with that anchor")
