#!/usr/bin/env python
"""The Korean edition (issue #24). The English notebooks in nbs/ are the one source; nbs/ko/<stem>.po (gettext, made
with polib) holds the Korean of each markdown cell, keyed by its English; nbs/ko/<stem>.ipynb is built from the two:
the English notebook, markdown in Korean, code and outputs as they are, and a hidden cell that makes `check` speak Korean.
  python tools/translate.py update [STEM...]  refresh every catalog from its notebook (and make those of the STEMs
                                              named): a cell whose English changed keeps its old Korean as a
                                              `#, fuzzy` draft, with the old English as previous_msgid
  python tools/translate.py build             write nbs/ko/<stem>.ipynb for every catalog, and compile the catalog
                                              of `check`'s hints (mnist37/locale/ko/LC_MESSAGES/mnist37.po) to its .mo
  python tools/translate.py --check           exit 1 naming each cell missing, fuzzy or stale, each generated
                                              notebook (or .mo) out of date, and each teaching notebook (or the
                                              index) with no catalog (`make test` runs it)"""
import argparse, copy, difflib, json, sys
from pathlib import Path
import polib

NBS = Path(__file__).resolve().parent.parent/'nbs'
HINTS = NBS.parent/'mnist37'/'locale'/'ko'/'LC_MESSAGES'/'mnist37.po'  # check()'s lines, read by gettext from the .mo
HEADER = {'Project-Id-Version': 'mnist37', 'Language': 'ko', 'MIME-Version': '1.0',
          'Content-Type': 'text/plain; charset=UTF-8', 'Content-Transfer-Encoding': '8bit'}
LANG_SRC = "#| hide\nimport os; os.environ['MNIST37_LANG'] = 'ko'  # check() and its hints in Korean"
LANG_CELL = {'cell_type': 'code', 'execution_count': None, 'id': 'mnist37-ko', 'metadata': {}, 'outputs': [],
             'source': LANG_SRC.splitlines(keepends=True)}

def read_nb(path): return json.loads(Path(path).read_text(encoding='utf-8'))
def nb_text(nb): return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + '\n'  # as nbformat writes
def markdown(nb):
    "(index, English) of each markdown cell of `nb`."
    return [(i, ''.join(c['source'])) for i, c in enumerate(nb['cells']) if c['cell_type'] == 'markdown']
def catalogs(nbs=NBS): return sorted((nbs/'ko').glob('*.po'))
def words(s, n=6): return ' '.join(s.split()[:n])

def merge(nb, old=None):
    "The catalog of `nb` from `old`: `(po, {cell index: 'stale'})`; a changed cell keeps the closest old Korean as a fuzzy draft."
    old = old or polib.POFile()
    cells, entries = markdown(nb), {e.msgid: e for e in old if not e.obsolete}
    unused = [e for e in entries.values() if e.msgid not in {s for _, s in cells} and e.msgstr]
    po, stale = polib.POFile(), {}
    po.metadata = old.metadata or dict(HEADER)
    for i, src in cells:
        if src in entries:
            e = copy.copy(entries[src]); po.append(e)
            if not e.fuzzy: e.previous_msgid = None  # a revised draft forgets the English it came from
            continue
        sim = lambda e: difflib.SequenceMatcher(None, e.msgid, src).ratio()
        prev = max(unused, key=sim, default=None)
        if prev is None or sim(prev) < 0.5: po.append(polib.POEntry(msgid=src, msgstr='')); continue
        unused.remove(prev); stale[i] = 'stale'
        po.append(polib.POEntry(msgid=src, msgstr=prev.msgstr, flags=['fuzzy'], previous_msgid=prev.previous_msgid or prev.msgid))
    for e in map(copy.copy, unused): e.obsolete = True; po.append(e)  # a rewritten cell's old Korean is kept, as msgmerge does
    return po, stale

def build(nb, po):
    "The Korean notebook: `nb` with each translated markdown cell in Korean, and the language cell after the first code cell."
    ko, nb = {e.msgid: e.msgstr for e in po.translated_entries()}, copy.deepcopy(nb)
    for c in nb['cells']:
        if c['cell_type'] == 'markdown' and ko.get(''.join(c['source'])): c['source'] = ko[''.join(c['source'])].splitlines(keepends=True)
    first = next((i for i, c in enumerate(nb['cells']) if c['cell_type'] == 'code'), -1)
    nb['cells'].insert(first + 1, copy.deepcopy(LANG_CELL))
    return nb

def problems(stem, nbs=NBS):
    "What is wrong with the Korean of notebook `stem`: one line per cell missing, fuzzy or stale, and one if its build is old."
    if not (nbs/f'{stem}.ipynb').exists(): return [f'no English notebook nbs/{stem}.ipynb for this catalog']
    nb, po = read_nb(nbs/f'{stem}.ipynb'), polib.pofile(str(nbs/'ko'/f'{stem}.po'))
    entries, (_, stale) = {e.msgid: e for e in po if not e.obsolete}, merge(nb, po)
    out = []
    for i, src in markdown(nb):
        e = entries.get(src)
        why = ('fuzzy' if 'fuzzy' in e.flags else 'missing' if not e.msgstr else None) if e else stale.get(i, 'missing')
        if why: out.append(f'cell {i} {why}: "{words(src)}…"')
    if stale: out.append('English changed: run `python tools/translate.py update`, then revise the fuzzy drafts')
    built = nbs/'ko'/f'{stem}.ipynb'
    if not built.exists() or built.read_text(encoding='utf-8') != nb_text(build(nb, po)):
        out.append(f'{built.relative_to(nbs.parent)} is out of date: run `python tools/translate.py build`')
    return out

def update(stems=(), nbs=NBS):
    "Refresh every catalog from its notebook, and make the catalogs of `stems`."
    (nbs/'ko').mkdir(exist_ok=True)
    for stem in sorted({p.stem for p in catalogs(nbs)} | set(stems)):
        path = nbs/'ko'/f'{stem}.po'
        po, stale = merge(read_nb(nbs/f'{stem}.ipynb'), polib.pofile(str(path)) if path.exists() else None)
        po.save(str(path))
        print(f'{path.relative_to(nbs.parent)}: {len(po.translated_entries())}/{len(markdown(read_nb(nbs/f"{stem}.ipynb")))} '
              f'cells translated, {len(po.fuzzy_entries())} fuzzy' + (f' ({len(stale)} English changed)' if stale else ''))

def mo_stale(po=HINTS):
    "Whether the compiled .mo of the catalog `po` is missing or differs from it."
    mo = po.with_suffix('.mo')
    return po.exists() and (not mo.exists() or mo.read_bytes() != polib.pofile(str(po)).to_binary())

def build_all(nbs=NBS):
    "Write nbs/ko/<stem>.ipynb for every catalog, where it changed, and compile the catalog of `check`'s hints."
    if mo_stale(): polib.pofile(str(HINTS)).save_as_mofile(str(HINTS.with_suffix('.mo'))); print(f'compiled {HINTS.name}')
    for p in catalogs(nbs):
        out, text = p.with_suffix('.ipynb'), nb_text(build(read_nb(nbs/f'{p.stem}.ipynb'), polib.pofile(str(p))))
        if not out.exists() or out.read_text(encoding='utf-8') != text: out.write_text(text, encoding='utf-8'); print(f'wrote {out}')

def check(nbs=NBS):
    "Print the problems of every catalog; True when there are none."
    done = {p.stem for p in catalogs(nbs)}
    bad = {stem: problems(stem, nbs) for stem in sorted(done)}
    if nbs == NBS and mo_stale(): bad['mnist37'] = [f'{HINTS.with_suffix(".mo").name} is out of date: run `python tools/translate.py build`']
    for stem, out in bad.items():
        for line in out: print(f'{stem}: {line}')
    edition = [p.stem for p in nbs.glob('*.ipynb') if p.stem == 'index' or p.stem[:2] < '90']   # not the appendices
    if todo := sorted(stem for stem in edition if stem not in done):
        print('not translated yet:', ', '.join(todo), '(run `python tools/translate.py update STEM` and translate its catalog)')
    return not any(bad.values()) and not todo

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('command', nargs='?', choices=['update', 'build'])
    ap.add_argument('stems', nargs='*', help='notebooks (e.g. 07_learner) whose catalogs `update` makes')
    ap.add_argument('--check', action='store_true', help='exit 1 if a translation is missing, fuzzy or stale, or a build old')
    a = ap.parse_args()
    if a.command == 'update': update(a.stems)
    elif a.command == 'build': build_all()
    if a.check: sys.exit(0 if check() else 1)
    if not (a.command or a.check): ap.print_help()
