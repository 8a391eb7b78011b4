"""Tests of the `mnist37` console script (`mnist37.cli`), run as a user runs it: the installed script, in a
subprocess, with the sample data, and with full MNIST for `--dataset full`. Every mistake the issue lists must
end with exit status 2 (bad usage) or 1 (bad input), one line `mnist37: error: ...` on stderr, no traceback,
and nothing written where the output would have gone. One small linear model per dataset is trained once for
the whole file and reused."""
import json, os, re, shutil, signal, struct, subprocess, sys, tarfile, time, zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

MNIST37 = Path(sys.executable).parent/'mnist37'
EPOCHS = 3   # enough for 98.04% on the validation set at the recipe's learning rate; its 10 take longer


# ---------------------------------------------------------------- helpers and fixtures

@pytest.fixture(scope='module')
def env(tmp_path_factory, sample_root):
    "The environment of every run: the sample extracted once (conftest), a private fastai home and cache."
    home = tmp_path_factory.mktemp('cli-home')
    return {**os.environ, 'MNIST37_DATA': str(sample_root.parent), 'FASTAI_HOME': str(home/'fastai'),
            'MNIST37_CACHE': str(home/'cache'), 'MPLBACKEND': 'Agg'}


def run(env, *args, cwd=None, timeout=600):
    "Run `mnist37 *args`; return the CompletedProcess (text stdout and stderr)."
    assert MNIST37.is_file(), (f"{MNIST37} is missing: settings.ini must declare `console_scripts = mnist37=mnist37.cli:main` "
                               f"and the package be installed again (make venv, or pip install -e .)")
    return subprocess.run([str(MNIST37), *map(str, args)], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def run_all(env, cases, workers=3):
    "Run the commands of `cases` ({key: (args, cwd)}) a few at a time (each mostly waits for imports); {key: CompletedProcess}."
    with ThreadPoolExecutor(workers) as ex:
        futures = {k: ex.submit(run, env, *args, cwd=cwd) for k, (args, cwd) in cases.items()}
        return {k: f.result() for k, f in futures.items()}


def assert_fails(p, status, *words):
    "`p` exited with `status` after exactly one stderr line `mnist37: error: ...` containing every one of `words`."
    assert p.returncode == status, (p.returncode, p.stderr)
    assert 'Traceback' not in p.stderr, p.stderr
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith('mnist37: error: '), p.stderr
    for w in words: assert w in lines[0], (w, lines[0])
    assert p.stdout == '', p.stdout


def listing(folder): return sorted(p.relative_to(folder) for p in Path(folder).rglob('*'))


@pytest.fixture(scope='module')
def model_file(env, tmp_path_factory):
    "A linear model trained for EPOCHS epochs by `mnist37 train`."
    out = tmp_path_factory.mktemp('model')/'linear.pt'
    p = run(env, 'train', '--model', 'linear', '--epochs', EPOCHS, '--out', out)
    assert p.returncode == 0, p.stderr
    assert out.is_file() and re.fullmatch(rf'{re.escape(str(out))}: linear, validation accuracy 0\.9[78]\d\d after {EPOCHS} epochs \([\d.]+ s\)\n', p.stdout), p.stdout
    return out


@pytest.fixture(scope='module')
def valid(sample_root):
    "The first ten validation 3s and the first ten validation 7s."
    return {d: sorted((sample_root/'valid'/d).glob('*.png'))[:10] for d in '37'}


@pytest.fixture(scope='module')
def images(tmp_path_factory, valid):
    "Images as users have them, made from validation digits, and a gallery of bad ones."
    d = tmp_path_factory.mktemp('images')
    three = np.asarray(Image.open(valid['3'][0]))
    # a dark 3 on white paper, 200x200 RGB JPEG
    Image.fromarray(255 - three).resize((200, 200), Image.BICUBIC).convert('RGB').save(d/'photo.jpg', quality=90)
    # the 3 as 100x100 RGBA: black ink whose opacity is the digit, on a transparent background
    rgba = np.zeros((100, 100, 4), np.uint8)
    rgba[..., 3] = np.asarray(Image.fromarray(three).resize((100, 100), Image.BICUBIC))
    Image.fromarray(rgba, 'RGBA').save(d/'rgba.png')
    # a folder of two 7s and a 3, and a file that is not an image (skipped in a folder)
    (d/'folder').mkdir()
    for i, f in enumerate([valid['7'][0], valid['7'][1], valid['3'][1]]): (d/'folder'/f'{i}.png').write_bytes(f.read_bytes())
    (d/'folder'/'notes.txt').write_text('not an image')
    # the bad ones
    (d/'text.png').write_text('this is a text file, not a PNG\n')
    (d/'zero.png').write_bytes(b'')
    good = valid['3'][0].read_bytes()
    (d/'truncated.png').write_bytes(good[:len(good)//2])
    (d/'header-bomb.png').write_bytes(png_header(100_000, 100_000))
    Image.new('1', (8000, 8000)).save(d/'huge.png')   # 64 megapixels, ~8 kB on disk
    (d/'empty-folder').mkdir()
    return d


def png_header(w, h):
    "A PNG file whose header claims `w`x`h` grey pixels, with (far too little) data."
    def chunk(kind, data): return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 0, 0, 0, 0))
            + chunk(b'IDAT', zlib.compress(b'\x00' * 100)) + chunk(b'IEND', b''))


# ---------------------------------------------------------------- the commands

class Digit:
    "Equal to a `predict` answer 'D (p=0.xxx)' for the digit D."
    def __init__(self, d): self.d = d
    def __eq__(self, s): return re.fullmatch(rf'{self.d} \(p=\d\.\d{{3}}\)', s) is not None
    def __repr__(self): return f'<{self.d} (p=...)>'
ANY3, ANY7 = Digit(3), Digit(7)

def test_help_and_version(env):
    p = run(env, '--help')
    assert p.returncode == 0 and all(c in p.stdout for c in ('ladder', 'train', 'predict', 'eval')), p.stdout
    p = run(env, '--version')
    assert p.returncode == 0 and re.fullmatch(r'mnist37 \d+\.\d+\.\d+\n', p.stdout), p.stdout


def test_model_file_holds_what_is_needed(model_file):
    import torch
    rec = torch.load(model_file, weights_only=True)
    import mnist37
    assert {k: rec[k] for k in ('format', 'format_version', 'mnist37_version', 'kind', 'dataset', 'classes', 'seed', 'epochs')} == \
        {'format': 'mnist37-model', 'format_version': 2, 'mnist37_version': mnist37.__version__, 'kind': 'linear',
         'dataset': 'sample', 'classes': ['3', '7'], 'seed': 42, 'epochs': EPOCHS}
    assert rec['preprocessing']['layout'] == 'flat' and rec['preprocessing']['size'] == [28, 28]
    assert set(rec['state_dict']) == {'weight', 'bias'} and 0.97 < rec['accuracy'] < 0.99
    from mnist37.modelfile import weights_sha256
    assert rec['weights_sha256'] == weights_sha256(rec['state_dict'])   # what `read_model` checks the weights against
    umask = os.umask(0); os.umask(umask)
    assert model_file.stat().st_mode & 0o777 == 0o666 & ~umask     # a normal file, not mkstemp's private one
    assert listing(model_file.parent) == [Path('linear.pt')]       # no temporary file left behind


def test_predict_validation_pngs(env, model_file, valid):
    files = valid['3'] + valid['7']
    p = run(env, 'predict', model_file, *files)
    assert p.returncode == 0 and p.stderr == '', p.stderr
    lines = p.stdout.splitlines()
    assert len(lines) == 20
    got = [re.fullmatch(r'(.+): ([37]) \(p=(0\.\d{3}|1\.000)\)', ln).groups() for ln in lines]
    assert [g[0] for g in got] == [str(f) for f in files]
    right = sum(int(g[1]) == d for g, d in zip(got, [3]*10 + [7]*10))
    assert right >= 18, p.stdout
    assert all(0.5 <= float(g[2]) <= 1 for g in got)


def test_predict_json_photo_rgba_folder(env, model_file, images):
    p = run(env, 'predict', model_file, images/'photo.jpg', images/'rgba.png', images/'folder', '--json')
    assert p.returncode == 0 and p.stderr == '', p.stderr
    res = json.loads(p.stdout)
    assert [r['path'] for r in res] == [str(images/'photo.jpg'), str(images/'rgba.png')] + \
        [str(images/'folder'/f'{i}.png') for i in range(3)]             # folder: its images, sorted; notes.txt skipped
    assert [r['digit'] for r in res] == [3, 3, 7, 7, 3], res
    assert all(set(r) == {'path', 'digit', 'probability'} and 0.5 <= r['probability'] <= 1 for r in res)


BAD_IMAGES = [('text.png', 'is not a PNG or JPEG image'), ('zero.png', 'is empty (0 bytes)'),
              ('truncated.png', 'is damaged or truncated'), ('header-bomb.png', 'is too large'),
              ('huge.png', 'is 8000x8000 pixels, which is too large'), ('missing.png', 'no such file'),
              ('empty-folder', 'is a folder with no PNG or JPEG images')]

@pytest.fixture(scope='module')
def bad_image_runs(env, model_file, images):
    return run_all(env, {name: (['predict', model_file, images/name], None) for name, _ in BAD_IMAGES})

@pytest.mark.parametrize('name,words', BAD_IMAGES)
def test_predict_bad_image(bad_image_runs, images, name, words):
    assert_fails(bad_image_runs[name], 1, str(images/name), words)


def test_predict_at_a_terminal_says_which_digits_the_model_knows(env, model_file, valid):
    "At a terminal (stderr a pty), predict says that a model of the sample calls every image a 3 or a 7; piped, it does not."
    import pty
    master, slave = pty.openpty()
    try:
        p = subprocess.run([str(MNIST37), 'predict', str(model_file), str(valid['3'][0])], env=env, stdout=subprocess.PIPE,
                           stderr=slave, text=True, timeout=600)
        note = os.read(master, 4096).decode()
    finally: os.close(slave); os.close(master)
    assert p.returncode == 0 and len(p.stdout.splitlines()) == 1, p.stdout
    assert note.strip() == f'{model_file} knows only 3s and 7s: every image is called one of them', note


def test_predict_batch_with_bad_images(env, model_file, images, valid):
    "Bad images are reported, one line each; the good ones are still predicted; the status is 1."
    p = run(env, 'predict', model_file, valid['3'][0], images/'text.png', valid['7'][0], images/'truncated.png')
    assert p.returncode == 1 and 'Traceback' not in p.stderr
    assert [ln.rsplit(': ', 1) for ln in p.stdout.splitlines()] == [[str(valid['3'][0]), ANY3], [str(valid['7'][0]), ANY7]], p.stdout
    errs = p.stderr.splitlines()
    assert len(errs) == 2 and 'text.png is not a PNG or JPEG image' in errs[0] and 'truncated.png is damaged' in errs[1], errs
    p = run(env, 'predict', model_file, valid['3'][0], images/'zero.png', '--json')
    assert p.returncode == 1
    assert [sorted(r) for r in json.loads(p.stdout)] == [['digit', 'path', 'probability'], ['error', 'path']]


def test_eval(env, model_file):
    p = run(env, 'eval', model_file, '--json')
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    import torch
    assert res['accuracy'] == torch.load(model_file, weights_only=True)['accuracy']   # as measured while training
    assert res['total'] == 2038 and [sum(r) for r in res['confusion']] == [1010, 1028]
    assert res['correct'] == res['confusion'][0][0] + res['confusion'][1][1] == round(res['accuracy'] * 2038)
    p = run(env, 'eval', model_file)
    assert p.returncode == 0, p.stderr
    assert f"validation accuracy: {res['accuracy']:.4f} ({res['correct']} of 2038 images)" in p.stdout
    (c33, c37), (c73, c77) = res['confusion']
    assert re.search(rf'\n\s+3\s+{c33}\s+{c37}\n\s+7\s+{c73}\s+{c77}\n', p.stdout), p.stdout


@pytest.fixture(scope='module')
def ladder_runs(env, tmp_path_factory):
    "The ladder commands below, run a few at a time (each spends seconds importing fastai): {key: (CompletedProcess, out folder)}."
    d = tmp_path_factory.mktemp('ladder')
    outs = {'table': d/'results', 'json': None, 'book': d/'book'}
    cases = {'table': ['--models', 'linear,baseline', '--epochs', 2, '--out', outs['table']],
             'json':  ['--models', 'baseline', '--json', '--seed', 7],
             'book':  ['--book', '--models', 'baseline,linear', '--epochs', 1, '--out', outs['book']]}
    runs = run_all(env, {k: (['ladder', *args], None) for k, args in cases.items()})
    return {k: (runs[k], outs[k]) for k in cases}


def test_ladder_table_and_out(ladder_runs):
    p, out = ladder_runs['table']
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].split() == ['model', 'accuracy', 'seconds']
    assert [ln.split()[:2] for ln in lines[1:]] == [['baseline', '0.9514'], ['linear', '0.9774']]   # chapter order
    assert sorted(f.name for f in out.iterdir()) == ['ladder.png', 'results.json']
    rows = json.loads((out/'results.json').read_text())
    assert [(r['model'], r['accuracy']) for r in rows] == [('baseline', 0.9514), ('linear', 0.9774)]   # the fast rungs
    with Image.open(out/'ladder.png') as im: assert im.format == 'PNG' and im.size[0] > 300


def test_results_prints_a_saved_ladder(env, ladder_runs, tmp_path):
    p, out = ladder_runs['table']
    assert p.returncode == 0, p.stderr
    shown = run(env, 'results', out/'results.json')
    assert shown.returncode == 0 and shown.stderr == '', shown.stderr
    assert shown.stdout.splitlines() == p.stdout.splitlines()       # the same table the ladder printed
    assert json.loads(run(env, 'results', out/'results.json', '--json').stdout) == json.loads((out/'results.json').read_text())
    (tmp_path/'bad.json').write_text('{oops')
    (tmp_path/'rows.json').write_text('[{"model": "x"}]')
    for path, words in ((tmp_path/'missing.json', 'no results at'), (tmp_path/'bad.json', 'not a results file'),
                        (tmp_path/'rows.json', "must be a dict with 'model'")):
        assert_fails(run(env, 'results', path), 1, words)


def test_ladder_json(ladder_runs):
    p, _ = ladder_runs['json']
    assert p.returncode == 0, p.stderr
    rows = json.loads(p.stdout)
    assert [(r['model'], r['accuracy']) for r in rows] == [('baseline', 0.9514)] and rows[0]['seconds'] >= 0


def test_ladder_book_trains_each_way_by_its_own_call(env):
    "Beside the book, without --epochs, simple_net trains by its recipe and by the book's learn.fit(40, 0.1), and says so."
    p = run(env, 'ladder', '--book', '--models', 'mlp', '--json')
    assert p.returncode == 0, p.stderr
    assert "mlp: training for 10 epochs (seed 42), then the book's way for 40" in p.stderr.splitlines(), p.stderr
    row = json.loads(p.stdout)[0]
    # measured over seeds 42, 0 and 1, 1 and 2 threads: the book's 0.9818-0.9823, the recipe's 0.9833-0.9858
    assert row['book_accuracy'] >= 0.98 and row['accuracy'] >= row['book_accuracy'] - 0.005, row


# resnet18's model files go through the same code (notebook 14 round-trips an untrained one); training one
# takes minutes on a CPU, so the end-to-end test runs only when asked.
@pytest.mark.skipif(not os.environ.get('MNIST37_SLOW_TESTS'), reason='trains resnet18 (minutes on a CPU); set MNIST37_SLOW_TESTS=1')
def test_train_resnet18(env, tmp_path, valid):
    out = tmp_path/'r18.pt'
    p = run(env, 'train', '--model', 'resnet18', '--out', out, timeout=3600)   # 5-10 minutes on a busy 2-core machine
    assert p.returncode == 0 and out.is_file(), p.stderr
    res = json.loads(run(env, 'eval', out, '--json').stdout)
    assert res['accuracy'] >= 0.99, res
    p = run(env, 'predict', out, valid['3'][0], valid['7'][0])
    assert [ln.split(': ')[1][0] for ln in p.stdout.splitlines()] == ['3', '7'], p.stdout


def test_ladder_book(ladder_runs):
    "--book: the book's code beside each model, in the table, in results.json and in the chart."
    p, out = ladder_runs['book']
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].split() == ['model', 'accuracy', 'seconds', 'book_accuracy', 'book_seconds', 'speedup'], p.stdout
    rows = json.loads((out/'results.json').read_text())
    assert [r['model'] for r in rows] == ['baseline', 'linear']
    assert all(set(r) == {'model', 'accuracy', 'seconds', 'book_accuracy', 'book_seconds', 'speedup'} for r in rows), rows
    assert rows[0]['accuracy'] == rows[0]['book_accuracy'] == 0.9514            # the same baseline both ways
    assert rows[1]['accuracy'] > 0.96, rows                                    # one epoch, shuffled
    assert rows[1]['book_accuracy'] == 0.4956, rows   # one epoch of the book's sorted batches: every image a 3 (notebook 07)
    for ln, r in zip(lines[1:], rows):
        assert ln.split() == [r['model'], f"{r['accuracy']:.4f}", f"{r['seconds']:.1f}", f"{r['book_accuracy']:.4f}",
                              f"{r['book_seconds']:.1f}", f"{r['speedup']:.1f}x"], (ln, r)
    assert "the book's way" in p.stderr
    with Image.open(out/'ladder.png') as im: assert im.format == 'PNG' and im.size[0] > 300


# ---------------------------------------------------------------- all ten digits: --dataset full

@pytest.fixture(scope='module')
def full_env(env, both_data, full_root):
    "`env` with MNIST37_DATA holding the sample and full MNIST, and a cache of full MNIST's decoded images that lasts."
    return {**env, 'MNIST37_DATA': str(both_data), 'MNIST37_CACHE': str(full_root.parent/'cache')}


@pytest.fixture(scope='module')
def full_model(full_env, tmp_path_factory):
    "A ten-digit linear model trained for one epoch by `mnist37 train --dataset full`."
    out = tmp_path_factory.mktemp('full-model')/'tens.pt'
    p = run(full_env, 'train', '--dataset', 'full', '--model', 'linear', '--epochs', 1, '--out', out)
    assert p.returncode == 0, p.stderr
    assert out.is_file() and re.fullmatch(rf'{re.escape(str(out))}: linear for all ten digits, test accuracy 0\.8\d{{3}} '
                                          rf'after 1 epoch \([\d.]+ s\)\n', p.stdout), p.stdout
    return out


@pytest.fixture(scope='module')
def tests_by_digit(full_root):
    "The first three test images of each digit, {digit: [paths]}."
    return {d: sorted((full_root/'testing'/str(d)).glob('*.png'))[:3] for d in range(10)}


def test_full_model_file(full_model):
    import torch
    rec = torch.load(full_model, weights_only=True)
    assert (rec['kind'], rec['dataset'], rec['classes'], rec['epochs']) == ('linear', 'full', [str(d) for d in range(10)], 1)
    assert rec['state_dict']['weight'].shape == (10, 784) and 0.8 < rec['accuracy'] < 0.95


@pytest.fixture(scope='module')
def full_runs(full_env, full_model, tests_by_digit):
    "The commands of the tests below on the full model and data, run a few at a time: {key: CompletedProcess}."
    files = [f for d in range(10) for f in tests_by_digit[d]]
    return run_all(full_env, {'eval-json': (['eval', full_model, '--json'], None),
                              'eval-text': (['eval', full_model, '--dataset', 'full'], None),   # a --dataset that agrees is fine
                              'predict':   (['predict', full_model, *files], None),
                              'ladder':    (['ladder', '--dataset', 'full', '--models', 'baseline', '--json'], None)})


def test_full_eval(full_runs, full_model):
    from mnist37.data import FULL_COUNTS
    p = full_runs['eval-json']
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    import torch
    assert res['accuracy'] == torch.load(full_model, weights_only=True)['accuracy'] and res['accuracy'] > 0.8, res
    assert (res['dataset'], res['total'], res['classes']) == ('full', 10000, [str(d) for d in range(10)])
    assert [sum(r) for r in res['confusion']] == [FULL_COUNTS[f'testing/{d}'] for d in range(10)]
    assert res['correct'] == sum(res['confusion'][d][d] for d in range(10)) == round(res['accuracy'] * 10000)
    p = full_runs['eval-text']
    assert p.returncode == 0, p.stderr
    assert f"test accuracy: {res['accuracy']:.4f} ({res['correct']} of 10000 images)" in p.stdout
    lines = p.stdout.splitlines()
    header = lines.index('confusion matrix (rows: true digit, columns: predicted):')
    assert lines[header+1].split() == [str(d) for d in range(10)]
    assert [[int(n) for n in ln.split()] for ln in lines[header+2:]] == [[d, *row] for d, row in enumerate(res['confusion'])]


def test_full_predict(full_runs, tests_by_digit):
    files = [f for d in range(10) for f in tests_by_digit[d]]
    p = full_runs['predict']
    assert p.returncode == 0 and p.stderr == '', p.stderr
    got = [re.fullmatch(r'(.+): (\d) \(p=(0\.\d{3}|1\.000)\)', ln).groups() for ln in p.stdout.splitlines()]
    assert [g[0] for g in got] == [str(f) for f in files]
    right = sum(int(g[1]) == d for g, d in zip(got, [d for d in range(10) for _ in range(3)]))
    assert right >= 22, p.stdout                                        # 30 images, a one-epoch linear model (85% on the test set)
    assert all(0.1 <= float(g[2]) <= 1 for g in got)
    assert len({g[1] for g in got}) >= 8, p.stdout                      # it answers many different digits


def test_full_ladder_json(full_runs):
    p = full_runs['ladder']
    assert p.returncode == 0, p.stderr
    rows = json.loads(p.stdout)
    assert [(r['model'], r['accuracy']) for r in rows] == [('baseline', 0.6685)] and rows[0]['seconds'] >= 0


def test_dataset_mismatch(env, model_file, full_model, valid):
    "--dataset on predict or eval only checks the model file's: a mismatch is a usage error."
    assert_fails(run(env, 'eval', model_file, '--dataset', 'full'), 2,
                 f'{model_file} holds a linear model for --dataset sample, not full', 'leave out --dataset')
    assert_fails(run(env, 'predict', full_model, valid['3'][0], '--dataset', 'sample'), 2,
                 f'{full_model} holds a linear model for --dataset full, not sample')


# ---------------------------------------------------------------- bad model files

@pytest.fixture(scope='module')
def bad_models(tmp_path_factory, model_file):
    "Files that are not usable model files, by name."
    import torch
    d = tmp_path_factory.mktemp('bad-models')
    rec = torch.load(model_file, weights_only=True)
    good = model_file.read_bytes()
    (d/'zero.pt').write_bytes(b'')
    (d/'text.pt').write_text('a text file\n')
    (d/'garbage.pt').write_bytes(b'\x00' + os.urandom(1000))
    (d/'truncated.pt').write_bytes(good[:len(good)//2])
    (d/'a-folder.pt').mkdir()
    torch.save(torch.randn(10), d/'tensor.pt')
    torch.save({'weights': rec['state_dict']}, d/'other-dict.pt')
    torch.save({**rec, 'format_version': 999, 'mnist37_version': '7.0.0'}, d/'future.pt')
    torch.save({**rec, 'kind': 'mlp'}, d/'wrong-weights.pt')
    torch.save({k: v for k, v in rec.items() if k != 'classes'}, d/'no-classes.pt')
    return d

BAD_MODELS = [('missing.pt', ['no such model file']), ('a-folder.pt', ['is a folder, not a model file']),
              ('zero.pt', ['is empty (0 bytes)']), ('text.pt', ['is not an mnist37 model file']),
              ('garbage.pt', ['is not an mnist37 model file']), ('truncated.pt', ['is corrupt or truncated']),
              ('tensor.pt', ['is not an mnist37 model file (it holds a Tensor']),
              ('other-dict.pt', ["is not an mnist37 model file (it holds a dict without format 'mnist37-model'"]),
              ('future.pt', ['was made by mnist37 7.0.0 with model format 999', 'reads format 2', 'train it again']),
              ('wrong-weights.pt', ['is corrupt: its weights do not fit the mlp architecture']),
              ('no-classes.pt', ["is corrupt: its 'classes' field is missing"])]

@pytest.fixture(scope='module')
def bad_model_runs(env, bad_models):
    return run_all(env, {name: (['eval', bad_models/name], None) for name, _ in BAD_MODELS})

@pytest.mark.parametrize('name,words', BAD_MODELS)
def test_eval_bad_model_file(bad_model_runs, bad_models, name, words):
    assert_fails(bad_model_runs[name], 1, str(bad_models/name), *words)


def test_predict_bad_model_file(env, bad_models, valid):
    assert_fails(run(env, 'predict', bad_models/'future.pt', valid['3'][0]), 1, 'reads format 2')


# ---------------------------------------------------------------- usage errors: status 2, nothing written

USAGE = [(['train', '--model', 'cnn', '--out', 'm.pt'], "argument --model: invalid choice: 'cnn'"),
         (['train', '--model', 'linear'], 'the following arguments are required: --out'),
         (['train', '--model', 'linear', '--out', 'no-such-folder/m.pt'], 'the folder no-such-folder does not exist'),
         (['train', '--model', 'linear', '--out', 'existing-folder'], '--out existing-folder is a folder'),
         (['train', '--model', 'linear', '--out', 'new-folder/'], '--out new-folder/ is a folder; give the file to write'),
         (['train', '--model', 'linear', '--out', 'm.pt', '--epochs', '0'], "--epochs: must be a whole number from 1 to 1000000, got '0'"),
         (['train', '--model', 'linear', '--out', 'm.pt', '--epochs', 'many'], "got 'many'"),
         (['train', '--model', 'linear', '--out', 'm.pt', '--seed', '-1'], '--seed: must be a whole number from 0'),
         (['ladder', '--models', 'linear,cnn', '--out', 'res'], "--models: unknown model 'cnn'"),
         (['ladder', '--dataset', 'nope'], "argument --dataset: invalid choice: 'nope' (choose from 'sample', 'full')"),
         (['train', '--dataset', 'nope', '--model', 'linear', '--out', 'm.pt'], "argument --dataset: invalid choice: 'nope'"),
         (['train', '--model', 'resnet18', '--dataset', 'full', '--out', 'm.pt'],
          "argument --model: invalid choice: 'resnet18' for --dataset full (choose from linear, mlp, cnn)"),
         (['ladder', '--dataset', 'full', '--models', 'resnet18', '--out', 'res'],
          "--models: unknown model 'resnet18' for the full dataset; choose from baseline, linear, mlp, cnn"),
         (['ladder', '--dataset', 'full', '--book', '--out', 'res'], "--book: the book's code trains on the 3s and 7s only"),
         (['eval', 'm.pt', '--dataset', 'nope'], "argument --dataset: invalid choice: 'nope'"),
         (['ladder', '--out', 'a-file.txt'], '--out a-file.txt is a file; give a folder'),
         (['ladder', '--out', 'no-such-folder/res'], 'the folder no-such-folder does not exist'),
         (['predict', 'm.pt'], 'the following arguments are required: IMAGE'),
         (['eval'], 'the following arguments are required: FILE'),
         (['evaluate', 'm.pt'], "invalid choice: 'evaluate'"),
         (['train', '--model', 'linear', '--out', 'm.pt', '--device', 'tpu'], "argument --device: invalid choice: 'tpu'"),
         ([], 'no command given')]
if not __import__('torch').cuda.is_available():   # asking for a device this machine does not have is a usage error, before any training
    USAGE.append((['train', '--model', 'linear', '--out', 'm.pt', '--device', 'cuda'], "argument --device: device 'cuda' is not available here"))

@pytest.fixture(scope='module')
def usage_runs(env, tmp_path_factory):
    "Run each case of USAGE in a folder of its own holding a folder and a file; {i: (CompletedProcess, folder)}."
    folders = []
    for i in range(len(USAGE)):
        folders.append(tmp_path_factory.mktemp(f'usage{i}'))
        (folders[-1]/'existing-folder').mkdir()
        (folders[-1]/'a-file.txt').write_text('results?')
    runs = run_all(env, {i: (args, folders[i]) for i, (args, _) in enumerate(USAGE)})
    return {i: (runs[i], folders[i]) for i in runs}

@pytest.mark.parametrize('i', range(len(USAGE)), ids=[' '.join(a) or '(nothing)' for a, _ in USAGE])
def test_usage_error(usage_runs, i):
    p, folder = usage_runs[i]
    assert_fails(p, 2, USAGE[i][1])
    assert listing(folder) == [Path('a-file.txt'), Path('existing-folder')]   # nothing written


@pytest.mark.parametrize('sig,status,word', [(signal.SIGINT, 130, 'interrupted'), (signal.SIGTERM, 143, 'terminated')])
def test_interrupted_training_leaves_the_old_file(env, tmp_path, sig, status, word):
    "Ctrl-C or kill while training: one line, the usual status, the file at --out untouched and no temporary file left."
    out = tmp_path/'m.pt'
    out.write_text('the previous model')
    # A shell starts background jobs with Ctrl-C ignored, and children inherit that (CI may run us so): give the
    # command the default SIGINT a terminal gives it, or Python never turns SIGINT into KeyboardInterrupt.
    p = subprocess.Popen([str(MNIST37), 'train', '--model', 'linear', '--epochs', '1000', '--out', str(out)],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert p.stderr.readline().startswith('loading PyTorch and the data (3s and 7s)')   # at once
        assert 'training for 1000 epochs' in p.stderr.readline()   # printed once the data is loaded and training starts
        time.sleep(1)
        p.send_signal(sig)
        stdout, stderr = p.communicate(timeout=120)
    finally:
        if p.poll() is None: p.kill()
    assert p.returncode == status and stdout == '' and stderr == f'mnist37: error: {word}\n', (p.returncode, stdout, stderr)
    assert out.read_text() == 'the previous model' and listing(tmp_path) == [Path('m.pt')]
