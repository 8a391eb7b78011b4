"""Hostile input, second pass (issue 23), the command line's side: what it prints (one printer escapes every string
from outside), numbers that are not numbers in results, decoding work bounded by scans and frames, results files
that are not results, a closed or full stderr, and failed saves that leave nothing behind.

As in test_hostile: device nodes and FIFOs only under pytest's tmp folders, every command with a timeout."""
import errno, io, json, os, resource, stat, subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from test_cli import MNIST37, env, listing   # noqa: F401  (`env`: the module-scoped environment fixture)
from test_hostile import TIMEOUT, Hung, answers, fails, finished, good3, model, no_crash, run, run_all   # noqa: F401

CONTROL = [chr(c) for c in (*range(32), 127)]   # what a terminal acts on (ESC, BEL, NUL, newline...)


def run_with(env, args, stderr='closed', cwd=None, limit=None, timeout=TIMEOUT):
    """Run `mnist37 *args` with stderr 'closed' (`2>&-`) or a path to write it to (a full device); stdout captured.
    `limit`: the largest file, in bytes, the command may write (RLIMIT_FSIZE: a full disk for big files only)."""
    cmd = [str(MNIST37), *map(str, args)]
    if stderr == 'closed': cmd, err = ['bash', '-c', 'exec 2>&-; exec "$0" "$@"', *cmd], subprocess.DEVNULL
    else: err = open(stderr, 'wb') if stderr else subprocess.PIPE
    setlimit = limit and (lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)))
    try: return subprocess.run(cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
                               text=True, timeout=timeout, preexec_fn=setlimit or None)
    except subprocess.TimeoutExpired: return Hung(cmd, timeout)
    finally:
        if not isinstance(err, int): err.close()

def shown(text):
    "`text` holds nothing a terminal acts on but newlines."
    return not any(c in text for c in CONTROL if c != '\n')


# ---------------------------------------------------------------- 2. one printer for everything printed

ODD = 'lin\x1b[31mear\x07\x00\x1b]0;pwned\x07'   # a colour, a bell, a NUL, a window title

@pytest.mark.as_user
def test_results_table_escapes_model_names(env, tmp_path):
    "`mnist37 results` prints model names from the file escaped: no ESC, BEL or NUL reaches the terminal."
    fn = tmp_path/'results.json'
    fn.write_text(json.dumps([{'model': ODD, 'accuracy': 0.5, 'seconds': 1.0}]))
    p = run(env, 'results', fn)
    no_crash(p)
    assert p.returncode == 0 and shown(p.stdout), repr(p.stdout)
    assert r'lin\x1b[31mear\x07\x00' in p.stdout, p.stdout
    q = run(env, 'results', fn, '--json')
    assert q.returncode == 0 and shown(q.stdout) and json.loads(q.stdout)[0]['model'] == ODD, repr(q.stdout)

def test_data_error_escapes_MNIST37_DATA(env, model, tmp_path):
    "An error about an MNIST37_DATA path holding ESC (an MNISTDataError) prints the path escaped."
    bad = tmp_path/'\x1b[31mdata'
    bad.mkdir()
    p = run({**env, 'MNIST37_DATA': str(bad), 'FASTAI_HOME': str(tmp_path/'fastai')}, 'eval', model)
    line = fails(p, 1, 'MNIST37_DATA', r'\x1b[31mdata')
    assert shown(line), repr(line)

@pytest.mark.parametrize('error', ['OSError', 'MNISTDataError'])
def test_main_escapes_every_message(monkeypatch, capsys, error):
    "`main`'s error line is escaped whatever raised it: an OSError's file name, a data error's text."
    from mnist37 import cli, ladder
    from mnist37.data import MNISTDataError
    def load_results(path):
        raise (OSError(errno.EIO, 'Input/output error', ODD) if error == 'OSError' else MNISTDataError(f'{ODD} is damaged'))
    monkeypatch.setattr(ladder, 'load_results', load_results)
    assert cli.main(['results', 'x.json']) == 1
    out, err = capsys.readouterr()
    assert out == '' and err.startswith('mnist37: ') and shown(err), repr(err)
    assert r'\x1b[31mear\x07\x00' in err and 'this is a bug' not in err, err


# ---------------------------------------------------------------- 3. no NaN or Infinity, in or out

@pytest.mark.parametrize('value', [float('nan'), float('inf'), -1.0])
def test_save_results_refuses_numbers_that_are_not(tmp_path, value):
    "`save_results` and `save_ladder` refuse a NaN, infinite or negative accuracy or time: a ValueError, nothing written."
    from mnist37.ladder import ladder_row, save_ladder, save_results
    for key in ('accuracy', 'seconds'):
        row = {**ladder_row('linear', 0.98, 1.0), key: value}
        with pytest.raises(ValueError, match=key): save_results([row], tmp_path/'new'/'results.json')
        with pytest.raises(ValueError, match=key): save_ladder([row], tmp_path/'ladder')
        assert listing(tmp_path) == []

@pytest.mark.as_user
@pytest.mark.parametrize('text', ['NaN', 'Infinity', '-Infinity', '1e999'])
def test_results_file_with_NaN_is_refused(env, tmp_path, text):
    "A results file whose accuracy is NaN or infinite is refused in one line; nothing printed, not even with --json."
    fn = tmp_path/'results.json'
    fn.write_text(f'[{{"model": "linear", "accuracy": {text}, "seconds": 1.0}}]')
    for args in (['results', fn], ['results', fn, '--json']):
        fails(run(env, *args), 1, str(fn), 'accuracy')


# ---------------------------------------------------------------- 4. decoding work bounded by scans and frames

def many_scans(n, size=64):
    "A progressive JPEG (`size` pixels square) whose last scan is repeated `n` times more: 10 + n SOS markers."
    a = (np.random.default_rng(0).random((size, size, 3)) * 255).astype(np.uint8)
    buf = io.BytesIO(); Image.fromarray(a).save(buf, 'JPEG', progressive=True, quality=90)
    data = buf.getvalue()
    last = data.rindex(b'\xff\xda')
    return data[:-2] + data[last:-2] * n + data[-2:]     # ... last scan x (1 + n), EOI

@pytest.mark.as_user
def test_jpeg_with_thousands_of_scans_is_refused(tmp_path):
    "A progressive JPEG of 3,000 scans is refused before decoding, by counting them; libjpeg's own 10 scans are fine."
    from mnist37.checks import CLIError
    from mnist37.images import MAX_SCANS, open_image
    fn = tmp_path/'scans.jpg'
    fn.write_bytes(many_scans(3000, size=16))
    with pytest.raises(CLIError, match='3010 scans') as ei: open_image(fn)
    assert str(fn) in str(ei.value) and str(MAX_SCANS) in str(ei.value)
    (tmp_path/'ok.jpg').write_bytes(many_scans(0))
    assert open_image(tmp_path/'ok.jpg').size == (64, 64)

def test_scans_are_counted_across_chunks(tmp_path):
    "The count of SOS markers read a chunk at a time is the whole file's count, whatever the chunk's size."
    from mnist37.images import _count
    data = many_scans(40, size=16)
    with open(tmp_path/'s.jpg', 'wb+') as f:
        f.write(data); f.flush()
        assert {_count(f.fileno(), b'\xff\xda', chunk) for chunk in (1, 2, 3, 1000, 1 << 20)} == {data.count(b'\xff\xda')} == {50}

def test_animated_png_is_refused(tmp_path):
    "An animated PNG (APNG) of many frames is refused: a digit is one picture."
    from mnist37.checks import CLIError
    from mnist37.images import open_image
    frames = [Image.new('L', (28, 28), i) for i in range(50)]
    frames[0].save(tmp_path/'anim.png', save_all=True, append_images=frames[1:])
    with pytest.raises(CLIError, match='50 frames'): open_image(tmp_path/'anim.png')

def test_predict_refuses_many_scans_and_goes_on(env, model, good3, tmp_path):
    "`predict` on a JPEG of many scans and a good image: one error line for the JPEG, the good one is answered, exit 1."
    jpg = tmp_path/'scans.jpg'
    jpg.write_bytes(many_scans(500, size=16))
    p = run(env, 'predict', model, jpg, good3)
    no_crash(p)
    assert p.returncode == 1 and p.stderr.count('\n') == 1 and '510 scans' in p.stderr, p.stderr
    assert [path for path, _ in answers(p)] == [str(good3)], p.stdout


# ---------------------------------------------------------------- 6. results files that are not results

RESULTS = {'accuracy-abc': '[{"model": "linear", "accuracy": "abc", "seconds": 1}]',
           'model-a-number': '[{"model": 7, "accuracy": 0.5, "seconds": 1}]',
           'seconds-a-list': '[{"model": "linear", "accuracy": 0.5, "seconds": [1]}]',
           'accuracy-true': '[{"model": "linear", "accuracy": true, "seconds": 1}]',
           'deep-nesting': '[' * 100_000 + ']' * 100_000,
           'deep-in-a-row': '[{"model": "linear", "accuracy": 0.5, "seconds": ' + '[' * 100_000 + ']' * 100_000 + '}]',
           'huge': '[' + ', '.join(['{"model": "linear", "accuracy": 0.5, "seconds": 1}'] * 100_000) + ']',
           'no-rows': '[]'}

@pytest.fixture(scope='module')
def results_runs(env, tmp_path_factory):
    d = tmp_path_factory.mktemp('results')
    for name, text in RESULTS.items(): (d/f'{name}.json').write_text(text)
    return d, run_all(env, {name: ['results', d/f'{name}.json'] for name in RESULTS})

@pytest.mark.parametrize('name', RESULTS)
def test_results_file_that_is_not_results(results_runs, name):
    "A results file with a field of the wrong type, deep nesting, no rows or megabytes of them: one clear line, exit 1."
    d, runs = results_runs
    line = fails(runs[name], 1, str(d/f'{name}.json'), 'not a results file')
    assert len(line) < 400, line


# ---------------------------------------------------------------- 7. a closed or full stderr

@pytest.fixture(scope='module')
def stream_runs(env, model, good3, tmp_path_factory):
    "Commands run with stderr closed and with stderr a full device (root only), a few at a time: {(where, name): (run, folder)}."
    d = tmp_path_factory.mktemp('streams')
    (d/'notes.png').write_text('not an image')
    try: full = os.mknod(d/'dev-full', 0o666 | stat.S_IFCHR, os.makedev(1, 7)) or d/'dev-full'   # like /dev/full: writes fail, ENOSPC
    except PermissionError: full = None
    cases = {}
    for where, stderr in (('closed', 'closed'), ('full', full)):
        if stderr is None: continue
        w = d/where
        w.mkdir()
        for name, args in (('train', ['train', '--model', 'linear', '--epochs', 1, '--out', w/'m.pt', '--verbose']),
                           ('predict', ['predict', model, good3, d/'notes.png']),
                           ('eval', ['eval', w/'nothing.pt']),
                           ('ladder', ['ladder', '--models', 'baseline', '--out', w/'ladder'])):
            cases[where, name] = (args, stderr, w)
    with ThreadPoolExecutor(3) as ex:
        futures = {k: ex.submit(run_with, env, args, stderr, cwd=w) for k, (args, stderr, w) in cases.items()}
        return {k: (f.result(), cases[k][2]) for k, f in futures.items()}

WHERE = ['closed', 'full']

def stream_run(stream_runs, where, name):
    if (where, name) not in stream_runs: pytest.skip('a full device node (mknod) needs root')
    p, w = stream_runs[where, name]
    finished(p)
    return p, w

@pytest.mark.parametrize('where', WHERE)
def test_train_with_stderr_closed_or_full(stream_runs, where):
    "`train` does its job with no stderr to write to: exit 0, stdout only its one result line, a model file `eval` can use."
    p, w = stream_run(stream_runs, where, 'train')
    assert p.returncode == 0, p.stdout
    assert p.stdout.splitlines() == [p.stdout.strip()] and p.stdout.startswith(f"{w/'m.pt'}: linear, validation accuracy"), p.stdout
    import torch
    assert torch.load(w/'m.pt', weights_only=True)['kind'] == 'linear'

@pytest.mark.parametrize('where', WHERE)
def test_predict_with_stderr_closed_or_full(stream_runs, good3, where):
    "`predict` answers the good image and exits 1 for the bad one; its error is not moved to stdout."
    p, _ = stream_run(stream_runs, where, 'predict')
    assert p.returncode == 1 and [path for path, _ in answers(p)] == [str(good3)], p.stdout

@pytest.mark.parametrize('where', WHERE)
def test_failing_command_with_stderr_closed_or_full(stream_runs, where):
    "`eval` of a missing file exits 1 with nothing on stdout, whether its message can be written or not."
    p, _ = stream_run(stream_runs, where, 'eval')
    assert (p.returncode, p.stdout) == (1, ''), p.stdout

@pytest.mark.parametrize('where', WHERE)
def test_ladder_with_stderr_closed_or_full(stream_runs, where):
    "`ladder --out` saves both files and prints only the table: no progress on stdout."
    p, w = stream_run(stream_runs, where, 'ladder')
    assert p.returncode == 0, p.stdout
    assert p.stdout.split()[:4] == ['model', 'accuracy', 'seconds', 'baseline'] and len(p.stdout.splitlines()) == 2, p.stdout
    assert sorted(f.name for f in (w/'ladder').iterdir()) == ['ladder.png', 'results.json']


# ---------------------------------------------------------------- 8. a failed save writes nothing

def test_ladder_out_on_a_full_disk_leaves_no_folder(env, model, tmp_path):
    "`ladder --out new` when ladder.png cannot be written (a file-size limit): exit 1, one line, and no `new/` left."
    p = run_with(env, ['ladder', '--models', 'baseline', '--out', tmp_path/'new'], stderr=None, cwd=tmp_path, limit=4096)
    finished(p)
    lines = p.stderr.splitlines()
    assert p.returncode == 1 and lines[-1].startswith('mnist37: error: ') and 'File too large' in lines[-1], p.stderr
    assert 'Traceback' not in p.stderr and p.stdout == '', p.stderr
    assert listing(tmp_path) == []

def test_train_with_stdout_full_leaves_no_model_file(env, tmp_path):
    "`train` whose result line cannot be written (stdout a full device): exit 1, one error line, and no model file."
    try: os.mknod(tmp_path/'dev-full', 0o666 | stat.S_IFCHR, os.makedev(1, 7))
    except PermissionError: pytest.skip('a full device node (mknod) needs root')
    w = tmp_path/'out'
    w.mkdir()
    with open(tmp_path/'dev-full', 'w') as full:
        p = subprocess.run([str(MNIST37), 'train', '--model', 'linear', '--epochs', '1', '--out', str(w/'m.pt')], env=env,
                           stdin=subprocess.DEVNULL, stdout=full, stderr=subprocess.PIPE, text=True, timeout=TIMEOUT)
    assert p.returncode == 1, p.stderr
    assert p.stderr.splitlines()[-1] == 'mnist37: error: standard output cannot be written: No space left on device', p.stderr
    assert 'Traceback' not in p.stderr and 'Exception ignored' not in p.stderr, p.stderr
    assert listing(w) == []

def test_failed_save_removes_the_folders_it_made(monkeypatch, tmp_path):
    "When writing fails (a full disk), `save_ladder` and `save_results` remove the folders they created for it, no more."
    from mnist37 import ladder
    def full(*args, **kwargs): raise OSError(errno.ENOSPC, 'No space left on device')
    monkeypatch.setattr(ladder, 'atomic_write_all', full)
    monkeypatch.setattr(ladder, 'atomic_write', full)
    rows = [ladder.ladder_row('linear', 0.98, 1.0)]
    (tmp_path/'there').mkdir()
    with pytest.raises(OSError, match='No space'): ladder.save_ladder(rows, tmp_path/'there'/'new')
    with pytest.raises(OSError, match='No space'): ladder.save_results(rows, tmp_path/'a'/'b'/'results.json')
    assert listing(tmp_path) == [Path('there')]


# ---------------------------------------------------------------- 11. the library checks its arguments

@pytest.mark.as_user
def test_save_ladder_of_no_rows(tmp_path):
    "`save_ladder([], d)` is a clear ValueError before anything is written: `d` is not created."
    from mnist37.ladder import save_ladder, save_results
    with pytest.raises(ValueError, match='at least one row'): save_ladder([], tmp_path/'d')
    with pytest.raises(ValueError, match='at least one row'): save_results([], tmp_path/'e'/'results.json')
    assert listing(tmp_path) == []

@pytest.mark.parametrize('grey', [np.full((40, 40), np.nan), np.full((40, 40), np.inf), np.zeros((0, 5)), np.zeros(5),
                                  np.array([['a']])], ids=['nan', 'inf', 'empty', '1-D', 'text'])
def test_to_mnist_refuses_what_is_not_a_grey_image(grey):
    "`to_mnist` on NaN, infinity, an empty or 1-D array, or text: a TypeError or ValueError that says so."
    from mnist37.images import to_mnist
    with pytest.raises((TypeError, ValueError), match='to_mnist: grey'): to_mnist(grey)

@pytest.mark.parametrize('max_pixels', [-1, 0, 1.5, True])
def test_open_image_checks_max_pixels(good3, max_pixels):
    "`open_image(max_pixels=-1)` (or 0, 1.5, True) is a TypeError or ValueError about max_pixels, not '-1e-06 megapixels'."
    from mnist37.images import open_image
    with pytest.raises((TypeError, ValueError), match='max_pixels'): open_image(good3, max_pixels=max_pixels)
