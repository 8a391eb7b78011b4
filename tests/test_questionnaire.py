"""The questionnaire (nbs/16_questionnaire.ipynb): enough questions, numbered 1..N, each with one folded answer,
and every link pointing at a notebook of the course and at a heading that notebook really has."""
import re, unicodedata
from pathlib import Path

import nbformat, pytest

NBS = Path(__file__).resolve().parent.parent/'nbs'
QUESTIONNAIRE = NBS/'16_questionnaire.ipynb'

try:
    from markdown.extensions.toc import slugify as _md_slugify
    def slugify(text): return _md_slugify(text, '-')
except ImportError:  # the same as Python-Markdown's toc `slugify`, for an environment without it
    def slugify(text):
        text = unicodedata.normalize('NFKD', text).encode('ascii', 'ignore').decode('ascii')
        text = re.sub(r'[^\w\s-]', '', text).strip().lower()
        return re.sub(r'[-\s]+', '-', text)

QUESTION = re.compile(r'^\*\*(\d+)\.\s+(.+?)\*\*\s*$', re.M)        # **12. The question?**
LINK = re.compile(r'\[([^\]]+)\]\(([^)\s]+)\)')
HEADING = re.compile(r'^(#{1,6})\s+(.+?)\s*#*\s*$')
FENCE = re.compile(r'^\s*(```|~~~)')

def markdown_of(path):
    return [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == 'markdown']

def headings(path):
    "Heading text -> anchor, for every markdown heading of a notebook (not inside fenced code), in toc's unique-id style."
    found, ids = {}, set()
    for src in markdown_of(path):
        fenced = False
        for line in src.splitlines():
            if FENCE.match(line): fenced = not fenced; continue
            if fenced or not (m := HEADING.match(line)): continue
            slug, base, i = slugify(m[2]), slugify(m[2]), 0
            while slug in ids: i += 1; slug = f'{base}_{i}'
            ids.add(slug); found.setdefault(m[2], slug)
    return found

@pytest.fixture(scope='module')
def questions():
    "(number, question, the markdown from the question up to the next one) for every question, in order."
    text = '\n\n'.join(markdown_of(QUESTIONNAIRE))
    ms = list(QUESTION.finditer(text))
    return [(int(m[1]), m[2], text[m.start():ms[i+1].start() if i+1 < len(ms) else len(text)]) for i, m in enumerate(ms)]

def test_slugify_is_the_toc_convention():
    assert slugify('`DataLoaders` and the `Learner`') == 'dataloaders-and-the-learner'
    assert slugify('Step 1: initialise the parameters') == 'step-1-initialise-the-parameters'
    assert slugify("`simple_net`, the PyTorch way") == 'simple_net-the-pytorch-way'
    assert slugify("Why `1e-3` got stuck, and a fix") == 'why-1e-3-got-stuck-and-a-fix'

def test_notebook_basics():
    nb = nbformat.read(QUESTIONNAIRE, as_version=4)
    assert nb.cells[0].cell_type == 'markdown' and nb.cells[0].source.startswith('# Questionnaire\n')
    assert re.search(r'^> \S', nb.cells[0].source, re.M), "the first cell needs nbdev's `> summary` line"
    assert nb.metadata.kernelspec.name == 'python3'   # opens in Colab or any Jupyter without asking for a kernel
    code = [c.source for c in nb.cells if c.cell_type == 'code']
    assert not any('default_exp' in s or '#| export' in s for s in code), "the questionnaire exports nothing"

def test_at_least_30_questions_numbered_without_gaps(questions):
    numbers = [n for n, _, _ in questions]
    assert len(numbers) >= 30
    assert numbers == list(range(1, len(numbers) + 1))

def test_each_question_has_exactly_one_folded_answer(questions):
    for n, q, block in questions:
        assert q.rstrip().endswith(('?', '.')), f"question {n}: {q!r}"
        assert block.count('<details>') == 1 and block.count('</details>') == 1, f"question {n} needs one <details> answer"
        assert re.search(r'<details><summary>Answer</summary>\n\n\S', block), f"question {n}: a blank line after <summary>"
        assert re.search(r'\S\n\n</details>', block), f"question {n}: a blank line before </details>"
        assert block.index('<details>') > block.index(q), f"question {n}: the answer comes after the question"
        answer = block[block.index('<summary>Answer</summary>'):block.index('</details>')]
        assert len(answer.split()) >= 10, f"question {n}: the answer is empty or too short"

def test_each_answer_links_where_it_is_taught(questions):
    for n, _, block in questions:
        answer = block[block.index('<details>'):block.index('</details>')]
        assert any(href.split('#')[0].endswith('.ipynb') for _, href in LINK.findall(answer)), f"question {n} links no notebook"

def test_every_link_points_at_an_existing_notebook_heading(questions):
    cache = {}
    text = '\n\n'.join(markdown_of(QUESTIONNAIRE))
    links = [(label, href) for label, href in LINK.findall(text) if not re.match(r'[a-zA-Z][\w+.-]*:', href)]
    assert links
    for label, href in links:
        name, _, anchor = href.partition('#')
        assert name.endswith('.ipynb') and (NBS/name).is_file(), f"{href}: no such notebook in nbs/"
        assert anchor, f"{href}: link to the section that teaches it, not just the notebook"
        found = cache.setdefault(name, headings(NBS/name))
        assert anchor in found.values(), f"{href}: {name} has no heading with that anchor"
        # the label names the notebook and the heading, as `[notebook 06, The DataLoader](06_minibatches.ipynb#the-dataloader)`
        m = re.fullmatch(r'notebook (\d+), (.+)', label)
        assert m and name.startswith(m[1] + '_'), f"{label!r} should read 'notebook NN, <heading>' for {name}"
        assert found.get(m[2]) == anchor, f"{label!r}: the heading text does not match the anchor {anchor}"
