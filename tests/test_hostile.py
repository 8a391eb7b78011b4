"""Hostile inputs to the `mnist37` console script and to `mnist37.data`: device nodes, FIFOs and symlinks where
files are expected, decompression bombs, bit rot in model files, poisoned caches, unusable environment variables,
outputs that cannot be written, odd file names, a closed stdout. Every one must end in the documented way: exit 2
(usage) or 1 (bad input), one line `mnist37: error: ...` per problem on stderr, never a traceback or
'this is a bug', never a hang, and nothing written or changed where it should not be.

Everything hostile (device nodes, FIFOs, symlinks, read-only folders) is made under pytest's tmp folders; no test
points the program at /dev, /proc or any other system path. Every command runs with a timeout: a hang fails its
test with a clear message instead of blocking the suite. One small linear model is trained for the whole module."""
import io, json, os, re, shutil, stat, struct, subprocess, tarfile, zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from test_cli import MNIST37, env, listing   # noqa: F401  (`env`: the module-scoped environment fixture)
from test_data import error_text, leftovers, src, tiny_tgz   # noqa: F401  (fixtures)

TIMEOUT = 120        # seconds for an ordinary command (training one epoch of the linear model included)
FIFO_TIMEOUT = 60    # seconds for a command that is given a FIFO: reading one that has no writer blocks for ever
BUG = 'this is a bug'


# ---------------------------------------------------------------- helpers

class Hung(subprocess.CompletedProcess):
    "What `run` returns for a command that did not finish within its timeout (it was killed)."
    def __init__(self, cmd, timeout):
        super().__init__(cmd, None, '', f'<no answer within {timeout} s: killed>')
        self.timeout = timeout

def run(env, *args, cwd=None, timeout=TIMEOUT):
    "Run `mnist37 *args` with a timeout; the CompletedProcess (text output), or a `Hung` one if it did not finish."
    cmd = [str(MNIST37), *map(str, args)]
    try: return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired: return Hung(cmd, timeout)

def run_all(env, cases, timeout=TIMEOUT, workers=3):
    "Run the commands of `cases` ({key: args}) a few at a time; {key: CompletedProcess or Hung}."
    with ThreadPoolExecutor(workers) as ex:
        futures = {k: ex.submit(run, env, *args, timeout=timeout) for k, args in cases.items()}
        return {k: f.result() for k, f in futures.items()}

def finished(p):
    "Fail the test (not the suite) if the command `p` hung."
    if isinstance(p, Hung): pytest.fail(f"`{' '.join(p.args[1:])}` hung: no answer within {p.timeout} s (it was killed)")

def no_crash(p):
    "`p` finished, and its stderr shows no traceback and no 'this is a bug'."
    finished(p)
    assert 'Traceback' not in p.stderr and BUG not in p.stderr, p.stderr

def error_lines(p):
    "The stderr lines of `p`, each checked to be a `mnist37: error: ` line."
    lines = p.stderr.splitlines()
    assert all(ln.startswith('mnist37: error: ') for ln in lines), p.stderr
    return lines

def fails(p, status, *words):
    """`p` exited with `status` (or one of the tuple `status`) after exactly one stderr line `mnist37: error: ...`
    holding every one of `words`, printing nothing on stdout; returns that line."""
    no_crash(p)
    assert p.returncode in (status if isinstance(status, tuple) else (status,)), (p.returncode, p.stderr)
    lines = error_lines(p)
    assert len(lines) == 1, p.stderr
    for w in words: assert w in lines[0], (w, lines[0])
    assert p.stdout == '', p.stdout
    return lines[0]

ANSWER = r'[37] \(p=(0\.\d{3}|1\.000)\)'

def answers(p):
    "The (path, answer) pairs of `predict`'s stdout."
    return [tuple(ln.rsplit(': ', 1)) for ln in p.stdout.splitlines()]


# ---------------------------------------------------------------- the model and a good image

@pytest.fixture(scope='module')
def model(env, tmp_path_factory):
    "One linear model trained for one epoch by `mnist37 train`, used by every test of the module."
    out = tmp_path_factory.mktemp('hostile-model')/'linear.pt'
    p = run(env, 'train', '--model', 'linear', '--epochs', 1, '--out', out)
    no_crash(p)
    assert p.returncode == 0 and out.is_file(), p.stderr
    return out

@pytest.fixture(scope='module')
def good3(env, model, sample_root, tmp_path_factory):
    "`good.png`: a copy of a validation 3 that `model` answers 3 for, alone in its folder."
    threes = sorted((sample_root/'valid'/'3').glob('*.png'))[:8]
    p = run(env, 'predict', model, *threes)
    no_crash(p)
    for f, (path, ans) in zip(threes, answers(p)):
        if path == str(f) and re.fullmatch(ANSWER, ans) and ans.startswith('3'):
            dst = tmp_path_factory.mktemp('good')/'good.png'
            shutil.copyfile(f, dst)
            return dst
    pytest.fail(f"the model answers 3 for none of {len(threes)} validation 3s: {p.stdout} {p.stderr}")


def chardev(path):
    "A character device node at `path` like /dev/null (major 1, minor 3), made in a tmp folder: reads give EOF."
    os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    return path


# ---------------------------------------------------------------- 1. train --out that is not a regular file

OUT_KINDS = ['character-device', 'fifo', 'symlink-to-file', 'dangling-symlink', 'read-only-folder']

def make_out(kind, d):
    "Make the --out path of `kind` in the folder `d`; return it."
    out = d/'model.pt'
    if kind == 'character-device': chardev(out)
    elif kind == 'fifo': os.mkfifo(out)
    elif kind == 'symlink-to-file':
        (d/'target.pt').write_text('the previous model')
        out.symlink_to('target.pt')
    elif kind == 'dangling-symlink': out.symlink_to('nowhere.pt')
    elif kind == 'read-only-folder':
        (d/'ro').mkdir()
        out = d/'ro'/'model.pt'
        os.chmod(d/'ro', 0o500)
    return out

def snapshot(path):
    "What must not change about `path`: its lstat (type, device numbers, inode), where a link points, what the target holds."
    try: st = os.lstat(path)
    except FileNotFoundError: return None
    snap = {'mode': st.st_mode, 'rdev': st.st_rdev, 'ino': st.st_ino}
    if stat.S_ISLNK(st.st_mode):
        snap['link'] = os.readlink(path)
        target = Path(path).parent/snap['link']
        snap['target'] = target.read_bytes() if target.is_file() else None
    return snap

def root_ignores_permissions(folder):
    "True when we can create a file in the read-only `folder` anyway (root, without a restricting capability set)."
    probe = Path(folder)/'.probe'
    try: probe.touch()
    except PermissionError: return False
    probe.unlink()
    return True

@pytest.fixture(scope='module')
def out_runs(env, tmp_path_factory):
    "`train --out PATH` for each kind of OUT_KINDS, a few at a time: {kind: (CompletedProcess, PATH, folder, before)}."
    made = {}
    for kind in OUT_KINDS:
        d = tmp_path_factory.mktemp(f'out-{kind}')
        out = make_out(kind, d)
        if kind == 'read-only-folder' and root_ignores_permissions(out.parent):
            os.chmod(out.parent, 0o700); continue
        made[kind] = (out, d, (snapshot(out), listing(d)))
    runs = run_all(env, {k: ['train', '--model', 'linear', '--epochs', 1, '--out', out] for k, (out, _, _) in made.items()})
    yield {k: (runs[k], *made[k]) for k in made}
    for out, _, _ in made.values(): os.chmod(out.parent, 0o700)   # so that pytest can clean up

@pytest.mark.parametrize('kind', OUT_KINDS)
def test_train_out_not_a_regular_file(out_runs, kind):
    """--out naming a device node, a FIFO, a symlink (live or dangling) or a file in a read-only folder is a usage
    error found before training; the path is left exactly as it was and nothing new appears beside it."""
    if kind not in out_runs: pytest.skip('we run as root and the OS lets root write in a 0o500 folder anyway')
    p, out, d, (before, files) = out_runs[kind]
    words = [str(out)] + (['not a regular file'] if kind != 'read-only-folder' else [])
    line = fails(p, 2, *words)
    assert 'training for' not in p.stderr, line
    assert snapshot(out) == before, f"{out} was changed: {before} -> {snapshot(out)}"
    assert listing(d) == files


# ---------------------------------------------------------------- 2. a FIFO or a device as the model file
# ---------------------------------------------------------------- 4. bit rot in a model file
# ---------------------------------------------------------------- 8. a record without 'mnist37_version'

@pytest.fixture(scope='module')
def odd_models(model, tmp_path_factory):
    "Model files that are not what they seem, by name."
    import torch
    d = tmp_path_factory.mktemp('odd-models')
    os.mkfifo(d/'fifo.pt')
    chardev(d/'device.pt')
    rec = torch.load(model, weights_only=True)
    w = rec['state_dict']['weight'].clone()
    w.view(torch.int32).view(-1)[100] ^= 1 << 20                 # one flipped bit in one float: still finite
    assert not torch.equal(w, rec['state_dict']['weight']) and w.isfinite().all()
    torch.save({**rec, 'state_dict': {**rec['state_dict'], 'weight': w}}, d/'flipped.pt')
    torch.save({k: v for k, v in rec.items() if k != 'mnist37_version'}, d/'no-version.pt')
    return d

@pytest.fixture(scope='module')
def model_runs(env, model, odd_models, good3):
    "The commands of the tests below, a few at a time (two FIFO runs hang on a program that opens the FIFO)."
    d = odd_models
    return run_all(env, {'eval-fifo': ['eval', d/'fifo.pt'], 'predict-fifo': ['predict', d/'fifo.pt', good3],
                         'eval-device': ['eval', d/'device.pt'], 'predict-device': ['predict', d/'device.pt', good3],
                         'eval-flipped': ['eval', d/'flipped.pt'], 'eval-good': ['eval', model, '--json'],
                         'eval-no-version': ['eval', d/'no-version.pt']}, timeout=FIFO_TIMEOUT, workers=4)

@pytest.mark.parametrize('cmd', ['eval', 'predict'])
def test_fifo_as_model_file(model_runs, odd_models, cmd):
    "A FIFO given as the model file is refused at once (not opened, so no hang): exit 1, one line."
    fails(model_runs[f'{cmd}-fifo'], 1, str(odd_models/'fifo.pt'), 'FIFO', 'not a model file')

@pytest.mark.parametrize('cmd', ['eval', 'predict'])
def test_device_as_model_file(model_runs, odd_models, cmd):
    "A character device given as the model file is refused: exit 1, one line."
    fails(model_runs[f'{cmd}-device'], 1, str(odd_models/'device.pt'), 'not a model file')

def test_model_file_records_a_checksum_of_its_weights(model):
    "The record `train` writes carries 'weights_sha256', the hex SHA-256 its weights are checked against."
    import torch
    rec = torch.load(model, weights_only=True)
    assert re.fullmatch(r'[0-9a-f]{64}', str(rec.get('weights_sha256'))), sorted(rec)

def test_flipped_bit_in_a_weight_is_caught(model_runs, odd_models):
    "One flipped bit in one weight (every other field as written) makes the file corrupt: its checksum says so."
    fails(model_runs['eval-flipped'], 1, str(odd_models/'flipped.pt'), 'corrupt', 'checksum')

def test_unmodified_model_file_still_evaluates(model_runs):
    "The file as `train` wrote it passes the checksum and is scored on the 2,038 validation images."
    p = model_runs['eval-good']
    no_crash(p)
    assert p.returncode == 0 and p.stderr == '', p.stderr
    assert json.loads(p.stdout)['total'] == 2038

def test_record_without_mnist37_version(model_runs, odd_models):
    "A record lacking 'mnist37_version' is a corrupt file, said in one line (not a KeyError reported as a bug)."
    line = fails(model_runs['eval-no-version'], 1, str(odd_models/'no-version.pt'))
    assert 'corrupt' in line or 'field' in line, line


# ---------------------------------------------------------------- 3. bad paths in a predict batch

def png_chunks(data):
    "The (type, body) chunks of the PNG `data`."
    i, out = 8, []
    while i < len(data):
        n, = struct.unpack('>I', data[i:i+4])
        out.append((data[i+4:i+8], data[i+8:i+8+n]))
        i += 12 + n
    return out

def png_from_chunks(chunks):
    return b'\x89PNG\r\n\x1a\n' + b''.join(struct.pack('>I', len(b)) + t + b + struct.pack('>I', zlib.crc32(t + b))
                                           for t, b in chunks)

def text_bomb(png, kind, after_idat=False):
    "`png` with a `kind` (zTXt or iTXt) text chunk whose text inflates to 100 MB of zeros (~100 kB in the file)."
    z = zlib.compress(bytes(100_000_000), 9)
    body = b'Comment\0' + (b'\0' + z if kind == b'zTXt' else b'\1\0' + b'\0\0' + z)   # iTXt: flag, method, lang, key
    cs = png_chunks(png)
    cs.insert(len(cs) - 1 if after_idat else 1, (kind, body))
    return png_from_chunks(cs)

# name: (how to make it in the folder d, given good.png's bytes; the words its error line must hold besides the path)
BAD_PATHS = {
    'symlink-loop':   (lambda d, g: (d/'l.png').symlink_to('l.png') or d/'l.png', []),
    'through-a-file': (lambda d, g: d/'good.png'/'x.png', []),
    'long-name':      (lambda d, g: d/('n' * 296 + '.png'), ['name']),
    'ztxt-bomb':      (lambda d, g: (d/'ztxt.png').write_bytes(text_bomb(g, b'zTXt')) and d/'ztxt.png', []),
    'itxt-bomb':      (lambda d, g: (d/'itxt.png').write_bytes(text_bomb(g, b'iTXt')) and d/'itxt.png', []),
    'ztxt-bomb-late': (lambda d, g: (d/'late.png').write_bytes(text_bomb(g, b'zTXt', True)) and d/'late.png', []),
    'fifo':           (lambda d, g: os.mkfifo(d/'fifo.png') or d/'fifo.png', ['FIFO', 'not an image file']),
    'device':         (lambda d, g: chardev(d/'device.png'), ['character device']),
    'empty':          (lambda d, g: (d/'empty.png').write_bytes(b'') or d/'empty.png', ['empty (0 bytes)']),
}

@pytest.fixture(scope='module')
def bad_paths(tmp_path_factory, good3):
    "The paths of BAD_PATHS, made in one folder beside a copy of good.png: ({name: path}, good.png there)."
    d = tmp_path_factory.mktemp('bad-paths')
    good = d/'good.png'
    shutil.copyfile(good3, good)
    return {name: make(d, good.read_bytes()) for name, (make, _) in BAD_PATHS.items()}, good

@pytest.fixture(scope='module')
def batch_runs(env, model, bad_paths):
    "`predict MODEL BAD good.png` for each bad path, and `predict MODEL *all of them* good.png`."
    paths, good = bad_paths
    cases = {name: ['predict', model, path, good] for name, path in paths.items()}
    cases['all'] = ['predict', model, *paths.values(), good]
    return run_all(env, cases, timeout=FIFO_TIMEOUT)

def check_good_line(p, good):
    assert p.returncode == 1, (p.returncode, p.stderr)
    got = answers(p)
    assert len(got) == 1 and got[0][0] == str(good) and re.fullmatch(ANSWER, got[0][1]) and got[0][1][0] == '3', p.stdout

@pytest.mark.parametrize('name', BAD_PATHS)
def test_predict_batch_goes_on_past(batch_runs, bad_paths, name):
    """A symlink loop, a path through a file, a 300-character name, a PNG whose text chunk inflates to 100 MB,
    a FIFO, a character device, an empty file: each is one error line naming it, and the good image after it is
    still predicted; exit 1."""
    p, (paths, good), words = batch_runs[name], bad_paths, BAD_PATHS[name][1]
    no_crash(p)
    lines = error_lines(p)
    assert len(lines) == 1, p.stderr
    line = lines[0]
    assert str(paths[name]) in line, line
    rest = line.replace(str(paths[name]), '')     # the words must not come from the path itself
    for w in words: assert w.lower() in rest.lower(), (w, line)
    check_good_line(p, good)

def test_predict_batch_of_all_bad_paths(batch_runs, bad_paths):
    "All the bad paths in one batch: one error line each, in order, and the good image still predicted."
    p, (paths, good) = batch_runs['all'], bad_paths
    no_crash(p)
    lines = error_lines(p)
    assert len(lines) == len(paths), p.stderr
    for line, (name, path) in zip(lines, paths.items()): assert str(path) in line, (name, line)
    check_good_line(p, good)


# ---------------------------------------------------------------- 5. a poisoned cache of decoded images

def wrong_arrays(a):
    "For a cached (n, 28, 28) uint8 array `a`: what a damaged or foreign cache file might hold instead."
    return {'ten-images': a[:10].copy(),                            # the right shape per image, too few of them
            'wrong-shape': np.zeros((5, 27, 27), np.uint8),
            'float64': a.astype(np.float64) / 255}                  # the right values, scaled, as float64

@pytest.fixture(scope='module')
def cache_runs(env, model, tmp_path_factory):
    "`eval --json` filling a fresh cache, then `eval --json` with each cache file replaced by each kind of wrong array."
    base = tmp_path_factory.mktemp('cache')
    fill = run({**env, 'MNIST37_CACHE': str(base/'filled')}, 'eval', model, '--json')
    files = sorted((base/'filled').glob('*.npy'))
    envs = {}
    for kind in wrong_arrays(np.zeros((10, 28, 28), np.uint8)):
        c = base/kind
        shutil.copytree(base/'filled', c)
        for f in files: np.save(c/f.name, wrong_arrays(np.load(f))[kind])
        envs[kind] = {**env, 'MNIST37_CACHE': str(c)}
    with ThreadPoolExecutor(3) as ex:
        futures = {k: ex.submit(run, e, 'eval', model, '--json') for k, e in envs.items()}
        return fill, files, {k: f.result() for k, f in futures.items()}

@pytest.mark.parametrize('kind', ['ten-images', 'wrong-shape', 'float64'])
def test_poisoned_cache_is_not_trusted(cache_runs, kind):
    """A cache file holding the wrong number of images, the wrong shape or the wrong dtype is rebuilt or bypassed:
    `eval` scores the same 2,038 images with the same accuracy (a warning is allowed, a traceback is not)."""
    fill, files, runs = cache_runs
    no_crash(fill)
    assert fill.returncode == 0 and len(files) == 2, (fill.stderr, files)   # valid/3 and valid/7
    before = json.loads(fill.stdout)
    p = runs[kind]
    no_crash(p)
    assert p.returncode == 0, p.stderr
    assert len(p.stderr.splitlines()) <= 2, p.stderr                        # at most a warning per cache file
    got = json.loads(p.stdout)
    assert (got['total'], got['accuracy'], got['confusion']) == (2038, before['accuracy'], before['confusion'])


# ---------------------------------------------------------------- 6. environment variables naming the wrong thing

@pytest.fixture(scope='module')
def env_runs(env, model, data_dir, tmp_path_factory):
    "`eval` with MNIST37_CACHE naming a regular file, and with FASTAI_HOME naming one (data from the .tgz): (runs, files)."
    d = tmp_path_factory.mktemp('env-files')
    cache, home = d/'cache-file', d/'fastai-home-file'
    cache.write_text('a file, not a folder\n')
    home.write_text('a file, not a folder\n')
    runs = {'cache': ({**env, 'MNIST37_CACHE': str(cache)}, ['eval', model, '--json']),
            # MNIST37_DATA holds only the archives, so fastai's data folder (from FASTAI_HOME) is where they go
            'home': ({**env, 'MNIST37_DATA': str(data_dir), 'FASTAI_HOME': str(home)}, ['eval', model])}
    with ThreadPoolExecutor(2) as ex:
        futures = {k: ex.submit(run, e, *args) for k, (e, args) in runs.items()}
        return {k: f.result() for k, f in futures.items()}, {'cache': cache, 'home': home}

def test_MNIST37_CACHE_is_a_file(env_runs):
    "MNIST37_CACHE naming a regular file: `eval` still works without the cache; at most one warning naming the variable."
    runs, files = env_runs
    p = runs['cache']
    no_crash(p)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)['total'] == 2038
    warn = p.stderr.splitlines()
    assert len(warn) <= 1 and all('MNIST37_CACHE' in ln for ln in warn), p.stderr
    assert files['cache'].read_text() == 'a file, not a folder\n'

def test_FASTAI_HOME_is_a_file(env_runs):
    "FASTAI_HOME naming a regular file, when fastai's data folder is needed: exit 1, one line naming it."
    runs, files = env_runs
    line = fails(runs['home'], 1)
    assert 'FASTAI_HOME' in line or str(files['home']) in line, line
    assert files['home'].read_text() == 'a file, not a folder\n'


# ---------------------------------------------------------------- 7. ladder --out whose results.json cannot be written

def test_ladder_out_results_json_is_a_folder(env, tmp_path):
    "DIR/results.json is a folder: the ladder fails in one line and leaves nothing new in DIR (no ladder.png, no temporary file)."
    out = tmp_path/'res'
    (out/'results.json').mkdir(parents=True)
    p = run(env, 'ladder', '--models', 'baseline', '--out', out)
    line = fails(p, (1, 2))
    assert 'results.json' in line, line
    assert listing(out) == [Path('results.json')] and (out/'results.json').is_dir()


# ---------------------------------------------------------------- 8. odd names, a closed stdout, corrupt EXIF

def test_file_name_with_a_newline_is_escaped(env, model, good3, tmp_path):
    "An image named 'a<newline>b.png' is answered on one line: stdout has as many lines as there are good images."
    odd = tmp_path/'a\nb.png'
    shutil.copyfile(good3, odd)
    p = run(env, 'predict', model, good3, odd)
    no_crash(p)
    assert p.returncode == 0 and p.stderr == '', p.stderr
    lines = p.stdout.splitlines()
    assert len(lines) == 2, p.stdout
    assert lines[1].startswith(str(tmp_path/'a')) and re.search(rf'b\.png: {ANSWER}$', lines[1]), lines

def test_predict_with_stdout_closed(env, model, good3):
    "With stdout closed (`exec >&-`) the answers cannot be printed: the exit status says so, without a traceback."
    try: p = subprocess.run(['bash', '-c', 'exec >&-; exec "$0" "$@"', str(MNIST37), 'predict', str(model), str(good3)],
                            env=env, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired: pytest.fail(f"predict with stdout closed hung: no answer within {TIMEOUT} s")
    assert p.returncode != 0, p.stderr
    assert 'Traceback' not in p.stderr, p.stderr

def test_jpeg_with_corrupt_exif_is_quiet(env, model, good3, tmp_path):
    "A JPEG whose EXIF block is cut short is still predicted, and PIL's 'Corrupt EXIF data' warning is not shown."
    jpg = tmp_path/'exif.jpg'
    three = np.asarray(Image.open(good3))
    exif = b'Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x05\x01\x12\x00\x03'   # claims 5 entries, holds a part of one
    Image.fromarray(255 - three).resize((200, 200), Image.BICUBIC).convert('RGB').save(jpg, quality=90, exif=exif)
    p = run(env, 'predict', model, jpg)
    no_crash(p)
    assert 'Corrupt EXIF' not in p.stderr and 'Warning' not in p.stderr, p.stderr
    assert p.returncode == 0, p.stderr
    got = answers(p)
    assert len(got) == 1 and got[0][0] == str(jpg) and re.fullmatch(ANSWER, got[0][1]), p.stdout


# ---------------------------------------------------------------- 9. the data layer: unlisted archives, tar bombs

def write_sums(folder, names):
    "A SHA256SUMS in `folder` listing `names` (with made-up digests)."
    (Path(folder)/'SHA256SUMS').write_text(''.join(f'{"0"*64}  {n}\n' for n in names))

def test_archive_not_listed_in_SHA256SUMS_is_refused(tmp_path, tiny_tgz):
    "An archive beside a SHA256SUMS that does not list it is refused, and nothing is extracted."
    from mnist37.data import MNISTDataError, extract_archive
    write_sums(tiny_tgz.parent, ['other.tgz'])
    dest = tmp_path/'out'/'mnist_sample'
    with pytest.raises(MNISTDataError) as ei: extract_archive(tiny_tgz, dest, {'a/3': 2})
    msg = error_text(ei)
    assert 'not listed' in msg or 'SHA256SUMS' in msg, msg
    assert tiny_tgz.name in msg, msg
    assert not dest.exists() and leftovers(dest.parent) == []

def test_unlisted_sample_archive_in_MNIST37_DATA_is_refused(monkeypatch, src, sample_tgz, sandbox):
    "The same through `mnist_sample_path`: MNIST37_DATA holds mnist_sample.tgz and a SHA256SUMS listing only mnist_png.tgz."
    from mnist37.data import MNISTDataError, mnist_sample_path
    try: os.link(sample_tgz, src/sample_tgz.name)
    except OSError: shutil.copyfile(sample_tgz, src/sample_tgz.name)
    write_sums(src, ['mnist_png.tgz'])
    monkeypatch.setenv('MNIST37_DATA', str(src))
    with pytest.raises(MNISTDataError) as ei: mnist_sample_path()
    msg = error_text(ei)
    assert 'not listed' in msg or 'SHA256SUMS' in msg, msg
    assert leftovers(sandbox) == []

class _Zeros(io.RawIOBase):
    "A readable stream of `n` zero bytes."
    def __init__(self, n): self.left = n
    def readable(self): return True
    def readinto(self, b):
        k = min(len(b), self.left)
        b[:k] = bytes(k)
        self.left -= k
        return k

BOMB_SIZE = 200_000_000

@pytest.fixture(scope='module')
def tar_bomb(tmp_path_factory):
    """`mnist_sample.tgz`, a complete tiny dataset (`a/3/{0,1}.png`) plus one member of 200 MB of zeros (~200 kB
    gzipped), alone in its folder."""
    d = tmp_path_factory.mktemp('bomb')
    fn = d/'mnist_sample.tgz'
    with tarfile.open(fn, 'w:gz', compresslevel=9) as tf:
        for i in range(2):
            buf = io.BytesIO(); Image.new('L', (28, 28), i).save(buf, 'PNG')
            info = tarfile.TarInfo(f'mnist_sample/a/3/{i}.png'); info.size = len(buf.getvalue())
            tf.addfile(info, io.BytesIO(buf.getvalue()))
        info = tarfile.TarInfo('mnist_sample/zeros.bin'); info.size = BOMB_SIZE
        tf.addfile(info, io.BufferedReader(_Zeros(BOMB_SIZE)))
    assert fn.stat().st_size < 1_000_000
    return fn

def test_tar_bomb_is_refused(tmp_path, tar_bomb):
    "An archive whose members would extract to 200 MB is refused before extraction, with the size in the message."
    from mnist37.data import MNISTDataError, extract_archive
    dest = tmp_path/'out'/'mnist_sample'
    try:
        with pytest.raises(MNISTDataError) as ei: extract_archive(tar_bomb, dest, {'a/3': 2})
        msg = error_text(ei)
        assert re.search(r'\d+(\.\d+)?\s*(bytes|[kKMGT]i?B)\b', msg), msg
        assert str(tar_bomb) in msg or tar_bomb.name in msg, msg
        assert not dest.exists() and leftovers(dest.parent) == []
    finally: shutil.rmtree(tmp_path/'out', ignore_errors=True)   # 200 MB of zeros, if they were extracted: not worth keeping
