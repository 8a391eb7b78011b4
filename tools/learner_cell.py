"""The repository's address, set once in settings.ini (`git_url`), and the two things made from it: the first code cell
of every teaching notebook, which installs mnist37 in a learner's own Python (Colab, a fresh Jupyter) when it is
missing, and the site's "open it in Colab" link. `python tools/learner_cell.py` writes the cell into notebooks 01-17;
`--check` lists the notebooks whose cell is missing or out of date (tests/test_design.py runs it)."""
import argparse, json, re, sys
from configparser import ConfigParser
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARK = '# Colab, or a Python of your own:'   # how the cell is recognised

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

def is_current(path, cell=None):
    "True when the first code cell of the notebook at `path` is the install cell."
    first = next((c for c in _cells(path) if c['cell_type'] == 'code'), None)
    return first is not None and ''.join(first['source']) == (cell or install_cell())

def write(path, cell=None):
    "Put the install cell first among the notebook's code cells (replacing an older one), right after its title."
    nb = json.loads(path.read_text(encoding='utf-8'))
    nb['cells'] = [c for c in nb['cells'] if not ''.join(c['source']).startswith(f'#| hide\n{MARK}')]
    at = next((i + 1 for i, c in enumerate(nb['cells']) if c['cell_type'] == 'markdown'), 0)
    src = cell or install_cell()
    nb['cells'].insert(at, {'cell_type': 'code', 'execution_count': None, 'id': 'a1b2c3d4', 'metadata': {}, 'outputs': [],
                            'source': src.splitlines(keepends=True)})
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n', encoding='utf-8')

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--check', action='store_true', help='list the notebooks whose install cell is missing or stale; exit 1 if any')
    args = p.parse_args(argv)
    stale = [nb for nb in teaching_notebooks() if not is_current(nb)]
    if args.check:
        for nb in stale: print(f"{nb.relative_to(ROOT)}: its first code cell is not the install cell; run `python tools/learner_cell.py`")
        return 1 if stale else 0
    for nb in stale: write(nb); print(f"wrote the install cell into {nb.relative_to(ROOT)}")
    return 0

if __name__ == '__main__': sys.exit(main())
