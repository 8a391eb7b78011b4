"""The Korean edition (tools/translate.py, issue #24): the round trip of a catalog on a tiny notebook, and the catalogs
in nbs/ko/: numbers kept, one Korean term for each glossary term, links that reach a heading, builds that keep the code."""
import json, re, sys
from pathlib import Path

import polib, pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT/'tools'))
import translate as tr
from site_hooks import slug   # a heading's anchor, Hangul kept: the site's own rule

KO = ROOT/'nbs'/'ko'
GLOSSARY = [l.split('\t') for l in (KO/'glossary.tsv').read_text(encoding='utf-8').splitlines() if l.strip()]

def _cell(kind, src):
    c = {'cell_type': kind, 'id': f'c{abs(hash(src)) % 10**6}', 'metadata': {}, 'source': src.splitlines(keepends=True)}
    return c | ({'execution_count': 1, 'outputs': [{'name': 'stdout', 'output_type': 'stream', 'text': ['3\n']}]} if kind == 'code' else {})

@pytest.fixture
def nbs(tmp_path):
    "A folder nbs/: a tiny notebook `tiny` (markdown around an install cell and a cell with output), `02_other`, `95_more`."
    cells = [_cell('markdown', '# Tiny\n\n> A notebook of 2 cells.'), _cell('code', '#| hide\nimport os'),
             _cell('markdown', 'The gradient says which way is uphill. Step 3 times.'), _cell('code', 'print(1 + 2)  # ünïcode')]
    for stem in 'tiny', '02_other', '95_more':
        (tmp_path/f'{stem}.ipynb').write_text(tr.nb_text({'cells': cells, 'metadata': {'kernelspec': {'name': 'python3'}},
                                                          'nbformat': 4, 'nbformat_minor': 5}), encoding='utf-8')
    return tmp_path

def _translate(path, ko):
    po = polib.pofile(str(path))
    for e in po: e.msgstr, e.flags = ko[e.msgid], []
    po.save()

KO_TINY = {'# Tiny\n\n> A notebook of 2 cells.': '# 작은 노트북\n\n> 셀 2개짜리 노트북입니다.',
           'The gradient says which way is uphill. Step 3 times.': '기울기는 어느 쪽이 오르막인지 알려 줍니다. 3번 이동합니다.'}

def test_round_trip(nbs, capsys):
    tr.update(['tiny'], nbs)
    po = polib.pofile(str(nbs/'ko'/'tiny.po'))
    assert [e.msgid for e in po] == list(KO_TINY) and po.metadata['Language'] == 'ko'
    assert 'UTF-8' in po.metadata['Content-Type']
    assert tr.problems('tiny', nbs)[:2] == ['cell 0 missing: "# Tiny > A notebook of…"', 'cell 2 missing: "The gradient says which way is…"']
    _translate(nbs/'ko'/'tiny.po', KO_TINY); tr.build_all(nbs)
    assert tr.problems('tiny', nbs) == [] and not tr.check(nbs)   # 02_other has no catalog: a teaching notebook untranslated
    assert 'not translated yet: 02_other (' in capsys.readouterr().out   # named; the appendix 95_more is not
    (nbs/'02_other.ipynb').unlink()
    assert tr.check(nbs)

    # One English sentence changes: the check names that cell, and update keeps the Korean as a fuzzy draft.
    nb = tr.read_nb(nbs/'tiny.ipynb')
    old, new = list(KO_TINY)[1], 'The gradient says which way is uphill. Step 3 times, slowly.'
    nb['cells'][2]['source'] = new.splitlines(keepends=True)
    (nbs/'tiny.ipynb').write_text(tr.nb_text(nb), encoding='utf-8')
    out = tr.problems('tiny', nbs)
    assert out[0].startswith('cell 2 stale: "The gradient says') and 'out of date' in out[-1] and not tr.check(nbs)
    tr.update(nbs=nbs)
    e = polib.pofile(str(nbs/'ko'/'tiny.po')).find(new)
    assert e.fuzzy and e.previous_msgid == old and e.msgstr == KO_TINY[old]
    assert tr.problems('tiny', nbs)[0].startswith('cell 2 fuzzy: ')
    _translate(nbs/'ko'/'tiny.po', KO_TINY | {new: '기울기는 어느 쪽이 오르막인지 알려 줍니다. 천천히 3번 이동합니다.'})
    tr.build_all(nbs)
    assert tr.check(nbs)

def test_the_build_keeps_code_and_outputs(nbs):
    tr.update(['tiny'], nbs); _translate(nbs/'ko'/'tiny.po', KO_TINY); tr.build_all(nbs)
    en, ko = tr.read_nb(nbs/'tiny.ipynb'), tr.read_nb(nbs/'ko'/'tiny.ipynb')
    assert ko['cells'][2] == tr.LANG_CELL and ko['metadata'] == en['metadata']   # right after the install cell
    del ko['cells'][2]
    assert [json.dumps(c) for c in ko['cells'] if c['cell_type'] == 'code'] == [json.dumps(c) for c in en['cells'] if c['cell_type'] == 'code']
    assert [''.join(c['source']) for c in ko['cells'] if c['cell_type'] == 'markdown'] == list(KO_TINY.values())

def test_a_rewritten_cell_is_missing_and_its_old_korean_kept(nbs):
    tr.update(['tiny'], nbs); _translate(nbs/'ko'/'tiny.po', KO_TINY)
    nb = tr.read_nb(nbs/'tiny.ipynb'); nb['cells'][2]['source'] = ['Something else entirely.']
    (nbs/'tiny.ipynb').write_text(tr.nb_text(nb), encoding='utf-8')
    assert tr.problems('tiny', nbs)[0] == 'cell 2 missing: "Something else entirely.…"'
    tr.update(nbs=nbs)
    assert [e.msgstr for e in polib.pofile(str(nbs/'ko'/'tiny.po')).obsolete_entries()] == [KO_TINY[list(KO_TINY)[1]]]

# ---------------------------------------------------------------- the catalogs in nbs/ko/

def test_the_glossary():
    assert all(len(row) == 2 and all(row) for row in GLOSSARY), [r for r in GLOSSARY if len(r) != 2]
    assert len({en for en, _ in GLOSSARY}) == len(GLOSSARY)

# code, math, link targets, tags, and names in code without backticks (`x.grad`, `tensor(3.)`, `metric=`)
CODE = re.compile(r'```.*?```|`[^`\n]*`|\$\$.*?\$\$|\$[^$\n]*\$|\]\([^)]*\)|<[^>\n]*>|\w+(?=\()|\w+(?=[.=]\w)|(?<=\w\.)\w+', re.S)
def prose(s): return CODE.sub(' ', s)
def numbers(s): return set(re.findall(r'\d+(?:\.\d+)?', s))
WORDS = dict(zip('zero one two three four five six seven eight nine ten eleven twelve'.split(), map(str, range(13)))) | \
        {'twenty': '20', 'thirty': '30', 'forty': '40', 'fifty': '50', 'hundred': '100', 'thousand': '1000'}
def number_words(s):
    "The numbers `s` writes as words: threes, ten, zeroed."
    return {WORDS[w] for w in (re.sub(r'(s|ed|ing)$', '', w.lower()) for w in re.findall(r'[a-zA-Z]+', s)) if w in WORDS}

def numbers_differ(en, ko):
    "The numbers `en` and `ko` do not share: `ko` keeps every number of `en`, and may write its words (threes, ten) as digits."
    return sorted((numbers(en) - numbers(ko)) | (numbers(ko) - numbers(en) - number_words(en)))

def glossary_misses(en, ko):
    "The glossary terms that the English `en` uses and its Korean `ko` does not render as the glossary says (code aside)."
    text, misses = prose(en), []
    for term, korean in sorted(GLOSSARY, key=lambda r: -len(r[0])):   # longest first: `gradient` inside `gradient descent`
        pat = re.compile(r'\b' + re.escape(term).replace(r'\ ', r'[\s-]+') + r'(?:e?s)?\b', re.I)
        if pat.search(text) and korean not in ko: misses.append(f'{term} → {korean}')
        text = pat.sub(' ', text)
    return misses

def test_glossary_misses():
    assert glossary_misses('Stochastic gradient descent uses a `gradient`.', '확률적 경사 하강법은 `gradient`를 씁니다.') == []
    assert glossary_misses('The weights and the learning rate.', '가중치와 학습 속도.') == ['learning rate → 학습률']
    assert glossary_misses('Read weight.grad, then tensor(3.) with metric=accuracy.', '읽습니다. 정확도') == []

def test_numbers_differ():
    assert numbers_differ('1010 threes, then 1028 sevens.', '3 이미지 1010개, 이어서 7 이미지 1028개') == []
    assert numbers_differ('a batch of 256', '64개짜리 배치') == ['256', '64']

def anchors(nb):
    "The anchors of the headings of a notebook (not inside fenced code)."
    found = set()
    for c in nb['cells']:
        if c['cell_type'] == 'markdown':
            src = re.sub(r'```.*?```', '', ''.join(c['source']), flags=re.S)
            found |= {slug(m[1]) for m in re.finditer(r'^#{1,6}\s+(.+?)\s*$', src, re.M)}
    return found

CATALOGS = [*tr.catalogs(), tr.HINTS]   # the notebooks', and check()'s lines (mnist37/locale/ko)

@pytest.mark.parametrize('path', CATALOGS, ids=lambda p: p.stem)
def test_numbers_and_terms_are_kept(path):
    "Each translation keeps the numbers and {fields} of its English, and renders its glossary terms as the glossary does."
    bad = []
    for e in polib.pofile(str(path)).translated_entries():
        if diff := numbers_differ(e.msgid, e.msgstr): bad.append(f'numbers {diff} in "{tr.words(e.msgid)}…"')
        bad += [f'{m} in "{tr.words(e.msgid)}…"' for m in glossary_misses(e.msgid, e.msgstr)]
        if set(re.findall(r'\{\w*\}', e.msgid)) != set(re.findall(r'\{\w*\}', e.msgstr)): bad.append(f'fields in "{e.msgid}"')
    assert bad == [], '\n'.join(bad)

@pytest.mark.parametrize('path', sorted(KO.glob('*.ipynb')), ids=lambda p: p.stem)
def test_the_korean_notebook_keeps_the_code_and_its_links_land(path):
    en, ko = tr.read_nb(ROOT/'nbs'/path.name), tr.read_nb(path)
    code = lambda nb: [json.dumps(c, sort_keys=True) for c in nb['cells'] if c['cell_type'] == 'code' and c['id'] != tr.LANG_CELL['id']]
    assert code(ko) == code(en) and ko['metadata'] == en['metadata'] and tr.LANG_CELL in ko['cells']
    bad = []
    for c in ko['cells']:
        for target, anchor in re.findall(r'\]\(([\w.-]*\.ipynb|)#([^)\s]+)\)', ''.join(c['source'])) if c['cell_type'] == 'markdown' else []:
            nb = ko if not target else tr.read_nb(KO/target if (KO/target).exists() else ROOT/'nbs'/target)
            if anchor not in anchors(nb): bad.append(f'{target}#{anchor}')
    assert bad == [], f'links to no heading: {bad}'
