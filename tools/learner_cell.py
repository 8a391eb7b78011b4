"""What a learner gets on opening a teaching notebook (01-17) in Jupyter or Colab: a first code cell that installs
mnist37 in their own Python when it is missing, from the repository's address set once in settings.ini (`git_url`),
which the site's "open it in Colab" link is also made from; and the plumbing folded away: every code cell marked
`#| hide` or `#| echo: false` (tests, argument checks, drawing code) has its source collapsed in JupyterLab.
`python tools/learner_cell.py` writes both into notebooks 01-17; `--check` lists the notebooks where either is missing
or out of date (tests/test_design.py runs it)."""
import argparse, json, re, sys
from configparser import ConfigParser
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARK = '# Colab, or a Python of your own:'   # how the cell is recognised
HIDDEN = re.compile(r'\s*#\|\s*(hide|echo:\s*false)\s*$')   # nbdev's and Quarto's: not for the reader's eyes

def settings():
    cfg = ConfigParser(delimiters=['=']); cfg.read(ROOT/'settings.ini', encoding='utf-8')
    return cfg['DEFAULT']

def colab_url(cfg=None):
    "Where Colab opens the repository's notebooks, when `git_url` is a public GitHub repository; else ''."
    cfg = cfg or settings()
    m = re.fullmatch(r'https://github\.com/([\w.-]+)/([\w.-]+?)(?:\.git)?/?', cfg['git_url'])
    return f"https://colab.research.google.com/github/{m[1]}/{m[2]}/blob/{cfg['branch']}/{cfg['nbs_path']}" if m else ''

def install_cell(cfg=None):
    "The source of the first code cell of a teaching notebook."
    cfg = cfg or settings()
    return (f"#| hide\n{MARK} install the course's library if it is missing (`make lab` has it).\n"
            f"try: import mnist37\nexcept ModuleNotFoundError:\n    %pip install -q git+{cfg['git_url']}")

def teaching_notebooks(nbs=ROOT/'nbs'):
    return sorted(p for p in Path(nbs).glob('[0-9]*.ipynb') if int(p.name[:2]) < 90)

def _cells(path): return json.loads(path.read_text(encoding='utf-8'))['cells']

def is_plumbing(source):
    "Is a code cell with this `source` marked, in its leading directives, as hidden from readers?"
    for line in source.splitlines():
        if not line.lstrip().startswith('#|'): return False
        if HIDDEN.match(line): return True
    return False

def _folded(c): return c.get('metadata', {}).get('jupyter', {}).get('source_hidden', False)

def fold(cells):
    "Collapse the source of every plumbing cell in JupyterLab (and unfold any other)."
    for c in cells:
        if c['cell_type'] != 'code': continue
        jup = c.setdefault('metadata', {}).setdefault('jupyter', {})
        if is_plumbing(''.join(c['source'])): jup['source_hidden'] = True
        else: jup.pop('source_hidden', None)
        if not jup: del c['metadata']['jupyter']

def is_folded(path):
    "True when exactly the plumbing cells of the notebook at `path` are folded."
    return all(_folded(c) == is_plumbing(''.join(c['source'])) for c in _cells(path) if c['cell_type'] == 'code')

def is_current(path, cell=None):
    "True when the first code cell of the notebook at `path` is the install cell."
    first = next((c for c in _cells(path) if c['cell_type'] == 'code'), None)
    return first is not None and ''.join(first['source']) == (cell or install_cell())

def write(path, cell=None):
    "Put the install cell first among the notebook's code cells (replacing an older one), right after its title; fold."
    nb = json.loads(path.read_text(encoding='utf-8'))
    if not is_current(path, cell):
        nb['cells'] = [c for c in nb['cells'] if not ''.join(c['source']).startswith(f'#| hide\n{MARK}')]
        at = next((i + 1 for i, c in enumerate(nb['cells']) if c['cell_type'] == 'markdown'), 0)
        src = cell or install_cell()
        nb['cells'].insert(at, {'cell_type': 'code', 'execution_count': None, 'id': 'a1b2c3d4', 'metadata': {}, 'outputs': [],
                                'source': src.splitlines(keepends=True)})
    fold(nb['cells'])
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n', encoding='utf-8')

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--check', action='store_true', help='list the notebooks whose install cell or folding is stale; exit 1 if any')
    args = p.parse_args(argv)
    stale = [nb for nb in teaching_notebooks() if not (is_current(nb) and is_folded(nb))]
    if args.check:
        for nb in stale:
            why = 'its first code cell is not the install cell' if not is_current(nb) else 'its plumbing cells are not all folded'
            print(f"{nb.relative_to(ROOT)}: {why}; run `python tools/learner_cell.py`")
        return 1 if stale else 0
    for nb in stale: write(nb); print(f"wrote the install cell and the folding into {nb.relative_to(ROOT)}")
    return 0

if __name__ == '__main__': sys.exit(main())
