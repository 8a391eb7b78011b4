"""The library's shape, checked: the one vocabulary of argument checks, the one atomic writer, the one ladder runner,
the recipe table, and the limits the project keeps (module size, one-line docstrings)."""
import ast, json, math, os, re, subprocess, sys
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from mnist37.checks import check_whole, check_positive, check_one_of, check_pairs, check_subfolders, CLIError
from mnist37.files import atomic_write, sha256
from mnist37.ladder import ladder_row, run_ladder, check_models, format_results, save_results, load_results, row_summary

ROOT = Path(__file__).parent.parent
LIB = ROOT/'mnist37'

# ---------------------------------------------------------------- checks: one rule for bool, TypeError against ValueError

@given(st.integers(-5, 5), st.integers(-2, 2))
def test_check_whole_accepts_ints_from_lo(v, lo):
    if v >= lo: assert check_whole('n', v, lo=lo) == v
    else:
        with pytest.raises(ValueError, match=f'n must be >= {lo}, got {v}'): check_whole('n', v, lo=lo)

@pytest.mark.parametrize('v', [True, False, 2.0, 2.5, '3', None, [1]])
def test_check_whole_refuses_other_types_with_a_type_error(v):
    with pytest.raises(TypeError, match='f: n must be a whole number'): check_whole('n', v, fn='f')

@pytest.mark.parametrize('v', [True, '0.1', None, float('nan'), 0, -1.0])
def test_check_positive(v):
    err = TypeError if isinstance(v, (bool, str)) or v is None else ValueError
    with pytest.raises(err, match='lr must be'): check_positive('lr', v)

@given(st.floats(min_value=1e-9, max_value=1e9))
def test_check_positive_keeps_positive_numbers(v): assert check_positive('lr', v) == v

def test_check_one_of_pairs_and_subfolders(tmp_path):
    assert check_one_of('way', 'book', ('fast', 'book')) == 'book'
    with pytest.raises(ValueError, match="unknown way 'slow'; choose from fast, book"): check_one_of('way', 'slow', ('fast', 'book'))
    with pytest.raises(ValueError, match='train_x has 2 rows but train_y has 1'): check_pairs('f', 'train', [1, 2], [1])
    (tmp_path/'train').mkdir()
    check_subfolders('f', tmp_path, ['train'], '')
    with pytest.raises(ValueError, match='has no valid/. Pass the sample.'): check_subfolders('f', tmp_path, ['train', 'valid'], 'Pass the sample.')

def test_cli_error_is_one_line():
    e = CLIError('a\nb', code=2)
    assert (str(e), e.code) == ('a b', 2)

# ---------------------------------------------------------------- the one atomic writer

def test_atomic_write_replaces_or_keeps(tmp_path):
    target = tmp_path/'f.json'
    atomic_write(target, lambda f: f.write('old'), mode='w')
    for exc in (OSError('disk full'), KeyboardInterrupt()):
        def fail(f, exc=exc): f.write('new, half'); raise exc
        with pytest.raises(type(exc)): atomic_write(target, fail, mode='w')
        assert target.read_text() == 'old' and sorted(p.name for p in tmp_path.iterdir()) == ['f.json']
    atomic_write(target, lambda f: f.write(b'new'))
    assert target.read_bytes() == b'new'
    umask = os.umask(0); os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask

def test_sha256_is_hashlib_s(tmp_path):
    import hashlib
    (tmp_path/'x').write_bytes(b'\0' * 3_000_001)
    assert sha256(tmp_path/'x') == hashlib.sha256(b'\0' * 3_000_001).hexdigest()

def _calls(tree, names):
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and
            (getattr(n.func, 'attr', None) in names or getattr(n.func, 'id', None) in names)]

def test_only_files_py_renames_or_makes_temporary_files():
    "Every writer of the project (bench included) goes through `atomic_write`: no other os.replace, mkstemp or NamedTemporaryFile."
    offenders = []
    for p in [*LIB.glob('*.py'), *(ROOT/'bench').glob('*.py')]:
        if p.name in ('files.py', '_modidx.py'): continue
        for c in _calls(ast.parse(p.read_text()), {'replace', 'mkstemp', 'NamedTemporaryFile'}):
            name = getattr(c.func, 'attr', None) or c.func.id
            if name == 'replace' and not (isinstance(c.func, ast.Attribute) and getattr(c.func.value, 'id', '') == 'os'): continue
            offenders.append(f'{p.name}:{c.lineno}')
    assert offenders == []

# ---------------------------------------------------------------- the one ladder runner

def fake_rungs(log):
    def rung(name): log.append(name); return ladder_row(name, 0.5, 0.1)
    return {name: (lambda name=name: rung(name)) for name in ('baseline', 'linear', 'mlp', 'resnet18')}

@given(st.lists(st.sampled_from(['baseline', 'linear', 'mlp', 'resnet18']), min_size=1, max_size=8))
def test_run_ladder_runs_each_named_rung_once_in_ladder_order(models):
    log = []
    rows = run_ladder(fake_rungs(log), models)
    want = [m for m in ('baseline', 'linear', 'mlp', 'resnet18') if m in models]
    assert log == want and [r['model'] for r in rows] == want

def test_run_ladder_refuses_unknown_names_before_training():
    log = []
    with pytest.raises(ValueError, match="unknown model 'cnn' for the full dataset; choose from baseline"):
        run_ladder(fake_rungs(log), ['linear', 'cnn'], 'full')
    assert log == []

def test_run_ladder_calls_back():
    started, done = [], []
    run_ladder(fake_rungs([]), None, on_start=started.append, on_row=done.append)
    assert started == ['baseline', 'linear', 'mlp', 'resnet18'] and [r['model'] for r in done] == started

def test_one_progress_line_in_the_library():
    "The line 'NAME: accuracy A, trained in S s' is written in one place only."
    hits = [p.name for p in LIB.glob('*.py') if p.name != '_modidx.py' and 'trained in {' in p.read_text()]
    assert hits == ['ladder.py']
    assert row_summary(ladder_row('mlp', 0.97251, 0.61)) == 'mlp: accuracy 0.9725, trained in 0.6 s'

def test_results_round_trip_and_bad_files(tmp_path):
    rows = [ladder_row('baseline', 0.9514, 0.1), {**ladder_row('linear', 0.98, 0.7), 'book_accuracy': 0.98, 'book_seconds': 2.8, 'speedup': None}]
    fn = save_results(rows, tmp_path/'a'/'results.json')
    assert load_results(fn) == rows and json.loads(fn.read_text())[1]['speedup'] is None   # JSON null, not NaN
    assert format_results(rows).splitlines()[2].split()[-1] == '2.8'
    for name, text, words in (('bad.json', '{oops', 'not a results file'), ('dict.json', '{}', 'no list of rows'),
                              ('rows.json', '[{"model": "x"}]', "must be a dict with 'model'")):
        (tmp_path/name).write_text(text)
        with pytest.raises(ValueError, match=words): load_results(tmp_path/name)
    with pytest.raises(ValueError, match='no results at'): load_results(tmp_path/'missing.json')

# ---------------------------------------------------------------- the recipe table

def test_every_recipe_builds_and_resolves():
    from mnist37.recipes import RECIPES, resolve, build_model, classes, kinds, RUNGS, FULL_RUNGS
    for (dataset, kind), r in RECIPES.items():
        model = build_model(kind, dataset)
        assert sum(p.numel() for p in model.parameters()) > 0
        for name in (r.loss, r.metric, r.opt): assert callable(resolve(name))
        assert len(classes(kind, dataset)) == {'sample': 2, 'full': 10}[dataset]
    assert (RUNGS, FULL_RUNGS) == (('baseline', *kinds('sample')), ('baseline', *kinds('full')))

def test_reading_the_table_imports_neither_torch_nor_fastai():
    "`mnist37 --help` reads the recipes; it must not wait for PyTorch."
    code = ("import sys; from mnist37.recipes import RECIPES, kinds; import mnist37.cli; kinds('full');"
            "print(sorted(m for m in ('torch', 'fastai', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == '[]'

def test_each_recipe_is_written_once():
    "The chapter's epochs and learning rates appear in recipes.py only, not again in other modules or bench."
    for p in [*LIB.glob('*.py'), ROOT/'bench'/'run.py']:
        if p.name in ('recipes.py', '_modidx.py'): continue
        text = p.read_text()
        for pattern in ('epochs=40', '40, 0.1', '10, 1.0', '10, 4.0', '10, 0.8', 'lr=4', 'lr=0.8', 'lr=0.5', 'lr=0.02',
                        '5, 0.5', '4, 0.02'):   # the (epochs, lr) of the sample's and full's recipes and the book's calls
            assert pattern not in text, (p.name, pattern)

# ---------------------------------------------------------------- the limits the project keeps

def test_module_sizes():
    sizes = {p.name: len(p.read_text().splitlines()) for p in LIB.glob('*.py') if p.name != '_modidx.py'}
    table = sizes.pop('exercises.py')   # a table, one entry (cases and usual mistakes) per exercise: it grows with them
    both = sizes.pop('data.py')         # notebook 01's half and appendix B's plumbing behind it
    assert max(sizes.values()) <= 300 and table <= 500 and both <= 320, (sizes, table, both)
    assert sizes['cli.py'] <= 275, sizes['cli.py']   # 250, and the streams' plumbing: a closed or full stderr, closed fds

def test_public_docstrings_are_one_line_of_at_most_120_characters():
    long = []
    for p in LIB.glob('*.py'):
        tree = ast.parse(p.read_text())
        methods = [m for c in tree.body if isinstance(c, ast.ClassDef) and not c.name.startswith('_') for m in c.body]
        for node in [*tree.body, *methods]:   # what a user calls: module-level definitions and public classes' methods
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith('_'):
                doc = ast.get_docstring(node)
                if doc is None or len(doc) > 120 or '\n' in doc: long.append(f'{p.name}:{node.name}')
    assert long == []

# ---------------------------------------------------------------- the notebooks keep their figures

FIGURE_CALLS = ('plt.subplots(', 'plt.figure(', 'show_image(', 'show_images(', '.imshow(', 'ladder_figure(')

@pytest.mark.parametrize('nb', sorted((ROOT/'nbs').glob('*.ipynb')), ids=lambda p: p.stem)
def test_every_figure_cell_keeps_its_figure(nb):
    "A committed code cell that draws must carry its picture: a run under MPLBACKEND=Agg would have dropped it silently."
    cells = json.loads(nb.read_text())['cells']
    def draws(src):   # a drawing call at the top level of the cell (not in a def), and no plt.close that drops it
        top = [ln for ln in src.splitlines() if not ln.startswith((' ', '#', 'def ', 'class ', '@'))]
        return any(f in ln for ln in top for f in FIGURE_CALLS) and 'plt.close(' not in src
    bare = [''.join(c['source']).splitlines()[0] for c in cells if c['cell_type'] == 'code' and draws(''.join(c['source']))
            and not any('image/png' in o.get('data', {}) for o in c.get('outputs', []))]
    assert not bare, f"{nb.name}: cells that draw but hold no figure (re-run the notebook without MPLBACKEND=Agg): {bare}"


# ---------------------------------------------------------------- checks that read the notebooks' own files (kept out of
# the notebooks, which run alone in a learner's Python with no repository around them)

def code_cells(nb):
    "The sources of the code cells of the notebook at `nb`."
    return [''.join(c['source']) for c in json.loads(Path(nb).read_text())['cells'] if c['cell_type'] == 'code']

def test_a_notebook_that_draws_digits_without_a_colormap_sets_greys():
    "Notebook 01 says every later notebook that draws digits sets `Greys` in its setup: so it does."
    for nb in sorted((ROOT/'nbs').glob('[0-9]*.ipynb')):
        code = '\n'.join(code_cells(nb))
        calls = re.findall(r'(?:show_images?|imshow|matshow)\((.*)', code)
        if any('cmap=' not in call for call in calls):
            assert "plt.rc('image', cmap='Greys')" in code, f"{nb.name} draws images without a colormap and does not set Greys"

def test_every_label_of_the_seven_steps_picture_is_a_line_of_notebook_04():
    "The picture of the seven steps labels each step with the notebook's own code, so it cannot drift from the code."
    cells = code_cells(ROOT/'nbs'/'04_sgd_quadratic.ipynb')
    drawing = next(c for c in cells if 'seven_steps = [' in c)
    tree = next(n for n in ast.parse(drawing).body if isinstance(n, ast.Assign) and getattr(n.targets[0], 'id', '') == 'seven_steps')
    seven_steps = ast.literal_eval(tree.value)
    code = '\n'.join(c for c in cells if 'seven_steps' not in c)
    assert [n for n, _, _ in seven_steps] == [1, 2, 3, 4, 5, 6, 7]
    for n, name, lines in seven_steps:
        for line in lines: assert line.strip().removesuffix('...)') in code, (n, name, line)

def test_no_cell_a_learner_runs_needs_the_dev_toolchain_or_the_repository():
    "A teaching notebook opened alone in Colab runs without nbdev, pytest or selenium, and without settings.ini."
    for nb in sorted((ROOT/'nbs').glob('[01][0-9]_*.ipynb')):
        for src in code_cells(nb):
            assert not re.search(r'^\s*(from|import)\s+(nbdev|pytest|selenium|execnb)\b', src, re.M), (nb.name, src[:200])
            assert 'settings.ini' not in src and 'get_config' not in src, (nb.name, src[:200])

def test_every_teaching_notebook_starts_by_installing_mnist37_and_folds_its_plumbing():
    "Notebooks 01-17 start by installing the library from settings.ini's git_url when it is missing, and fold their plumbing."
    out = subprocess.run([sys.executable, str(ROOT/'tools'/'learner_cell.py'), '--check'], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr

def test_an_exercise_never_replaces_a_name_the_notebook_uses():
    "Each exercise's stub is the learner's own name (`my_mnist_loss`, `MyBasicOptim`), so re-running an earlier cell still works."
    from mnist37.exercises import EXERCISES
    seen = set()
    for nb in sorted((ROOT/'nbs').glob('[01][0-9]_*.ipynb')):
        for src in code_cells(nb):
            for name, answer in re.findall(r"^check\('(\w+)', (\w+)\)", src, re.M):
                assert re.fullmatch(r'my_\w+|My\w+', answer), (nb.name, name, answer)
                assert re.search(rf'^(def|class) {answer}\b', src, re.M), (nb.name, answer, 'the stub is defined in the same cell')
                seen.add(name)
    assert seen == set(EXERCISES), set(EXERCISES) ^ seen   # every exercise is asked, in a teaching notebook
