"""Hostile input to the data side (issue #23): what `mnist37.data` and `mnist37.files` read (dataset PNGs, the cache,
archives, SHA256SUMS, fastai's config.ini) and write (probe and temporary files), and the arguments of `load_split`.

Every FIFO, device node, append-only folder and odd file is made under pytest's tmp folders. Whatever could block
on a FIFO runs in a child process with a timeout, so a hang fails its test and not the suite."""
import errno, io, json, os, shutil, struct, subprocess, sys, tarfile, zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import mnist37.data as data
from mnist37.data import MNISTDataError, extract_archive, fastai_data_dir, load_digit, load_split, verify_checksum
from mnist37.files import atomic_write, check_output_file, check_output_folder, check_writable
from test_data import error_text, leftovers, tiny_tgz, write_png   # noqa: F401  (fixture)
from test_hostile import FIFO_TIMEOUT, chardev, fails, model, no_crash, run   # noqa: F401  (fixtures)
from test_cli import env, listing   # noqa: F401  (fixtures)

ROOT = os.geteuid() == 0


def in_child(code, timeout=30):
    "Run the Python `code` in a child process (the same interpreter and path); its CompletedProcess, or fail if it hung."
    cmd = [sys.executable, '-P', '-c', code]   # -P: mnist37 from the path (PYTHONPATH too), not from the current folder
    try: return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired: pytest.fail(f"hung: no answer within {timeout} s (a FIFO was waited on)")

def one_line(msg):
    assert '\n' not in msg and 'Traceback' not in msg, msg
    return msg

def png_header(width, height, mode=0):
    "A PNG that declares `width` x `height` grey pixels in its header, with a few bytes of image data: tiny on disk."
    def chunk(kind, body): return struct.pack('>I', len(body)) + kind + body + struct.pack('>I', zlib.crc32(kind + body))
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, mode, 0, 0, 0))
            + chunk(b'IDAT', zlib.compress(b'\0' * 64)) + chunk(b'IEND', b''))

@pytest.fixture
def digits(tmp_path):
    "A folder of three good 28x28 PNGs."
    d = tmp_path/'digits'; d.mkdir()
    for i in range(3): write_png(d/f'{i}.png', value=i)
    return d


# ---------------------------------------------------------------- 1. every read refuses what is not a regular file

@pytest.mark.as_user
def test_fifo_among_dataset_pngs_is_refused_at_once(digits):
    "A FIFO named like a PNG in a dataset folder is refused, with and without the cache, instead of waited on."
    os.mkfifo(digits/'zzz.png')
    p = in_child(f"""
import mnist37.data as d
for cache in (False, True):
    try: d.load_digit({str(digits)!r}, cache=cache)
    except d.MNISTDataError as e: print(e)
""")
    lines = p.stdout.splitlines()
    assert p.returncode == 0 and len(lines) == 2, p.stderr
    for ln in lines: assert 'zzz.png' in ln and 'a FIFO' in ln, ln

@pytest.mark.skipif(not ROOT, reason="making a device node needs root")
def test_device_node_among_dataset_pngs_says_what_it_is(digits):
    chardev(digits/'zzz.png')
    with pytest.raises(MNISTDataError) as ei: load_digit(digits, cache=False)
    assert 'a character device' in one_line(error_text(ei))

def test_fifo_archive_checksum_and_config_are_refused_at_once(tmp_path):
    "A FIFO as the archive (`extract_archive`, `sha256`), as SHA256SUMS, or as fastai's config.ini: one clear error, no wait."
    for name in ('a/mnist_sample.tgz', 'b/SHA256SUMS', 'home/config.ini'):
        (tmp_path/name).parent.mkdir(); os.mkfifo(tmp_path/name)
    (tmp_path/'b'/'mnist_sample.tgz').write_bytes(b'not read')
    p = in_child(f"""
import os
from pathlib import Path
import mnist37.data as d, mnist37.files as f
t = Path({str(tmp_path)!r})
for call in (lambda: d.extract_archive(t/'a'/'mnist_sample.tgz', t/'out'/'mnist_sample', {{'a/3': 1}}),
             lambda: d.verify_checksum(t/'b'/'mnist_sample.tgz'),
             lambda: f.sha256(t/'a'/'mnist_sample.tgz')):
    try: call(); print('accepted')
    except (d.MNISTDataError, OSError) as e: print(e)
os.environ['FASTAI_HOME'] = str(t/'home')
try: d.fastai_data_dir(); print('accepted')
except d.MNISTDataError as e: print(e)
""", timeout=60)
    lines = p.stdout.splitlines()
    assert p.returncode == 0 and len(lines) == 4, (p.stdout, p.stderr)
    for ln, name in zip(lines, ('mnist_sample.tgz', 'SHA256SUMS', 'mnist_sample.tgz', 'config.ini')):
        assert 'a FIFO' in ln and name in ln, ln
    assert leftovers(tmp_path/'out') == []

def test_fifo_archive_in_MNIST37_DATA_says_what_it_is(monkeypatch, tmp_path, sandbox):
    src = tmp_path/'src'; src.mkdir(); os.mkfifo(src/'mnist_sample.tgz')
    monkeypatch.setenv('MNIST37_DATA', str(src))
    with pytest.raises(MNISTDataError) as ei: data.mnist_sample_path()
    msg = one_line(error_text(ei))
    assert 'mnist_sample.tgz' in msg and 'a FIFO' in msg, msg
    assert leftovers(sandbox) == []


# ---------------------------------------------------------------- 4. bounded work before decoding

@pytest.mark.parametrize('size', [(20000, 20000), (10000, 10000)])
def test_huge_png_in_a_dataset_is_refused_before_decoding(digits, size, recwarn):
    "A PNG declaring 400 or 100 million pixels: a clear error from its header, no DecompressionBomb error or warning."
    (digits/'1.png').unlink(); (digits/'1.png').write_bytes(png_header(*size))
    for cache in (False, True):
        with pytest.raises(MNISTDataError) as ei: load_digit(digits, cache=cache)
        msg = one_line(error_text(ei))
        assert '1.png' in msg and 'MNIST images are 28x28' in msg or 'not a readable PNG' in msg, msg
    assert not [w for w in recwarn if 'Decompression' in type(w.message).__name__], [str(w.message) for w in recwarn]

def test_png_of_more_than_a_megabyte_is_refused(digits):
    "A 28x28 PNG padded with 2 MB of text chunks: refused by its size, not read whole."
    from PIL.PngImagePlugin import PngInfo
    info = PngInfo(); info.add_text('padding', 'x' * 2_000_000, zip=False)
    Image.new('L', (28, 28)).save(digits/'big.png', pnginfo=info)
    with pytest.raises(MNISTDataError) as ei: load_digit(digits, cache=False)
    assert 'big.png' in one_line(error_text(ei))


# ---------------------------------------------------------------- 5. the cache is checked against its content

def cache_file():
    (fn,) = data.cache_dir().glob('*.npy')
    return fn

@pytest.mark.as_user
def test_cache_with_inverted_pixels_is_not_used(digits):
    "A cache file of the right count, shape and dtype, but other pixels (255 - each): the images are decoded afresh."
    good = load_digit(digits)
    fn = cache_file()
    np.save(fn, 255 - np.load(fn))
    assert torch.equal(load_digit(digits), good)
    assert torch.equal(torch.from_numpy(np.load(cache_file())), (good*255).to(torch.uint8))   # rewritten

def test_cache_header_declaring_a_huge_array_is_not_allocated(digits):
    "A cache file whose header declares 10**12 images: nothing that size is allocated, the images are decoded again."
    good = load_digit(digits)
    fn = cache_file()
    with open(fn, 'wb') as f:
        np.lib.format.write_array_header_1_0(f, {'descr': '|u1', 'fortran_order': False, 'shape': (10**12, 28, 28)})
        f.write(bytes(3 * 784))
    assert torch.equal(load_digit(digits), good)

@pytest.fixture(scope='module')
def inverted_cache_runs(env, model, tmp_path_factory):
    "`eval --json` filling a cache, then again with every cache file's pixels inverted under the same name."
    cache = tmp_path_factory.mktemp('inverted')/'cache'
    e = {**env, 'MNIST37_CACHE': str(cache)}
    fill = run(e, 'eval', model, '--json')
    files = sorted(cache.glob('*.npy'))
    for f in files: np.save(f, 255 - np.load(f))
    return fill, files, run(e, 'eval', model, '--json')

def test_eval_with_an_inverted_cache_scores_the_real_images(inverted_cache_runs):
    fill, files, p = inverted_cache_runs
    no_crash(fill); no_crash(p)
    assert fill.returncode == p.returncode == 0 and len(files) == 2, (fill.stderr, p.stderr)
    before, after = json.loads(fill.stdout), json.loads(p.stdout)
    assert (after['total'], after['accuracy']) == (2038, before['accuracy'])


# ---------------------------------------------------------------- 6. a user's broken files are not bugs

@pytest.fixture(scope='module')
def damaged_dataset_runs(env, model, sample_root, tmp_path_factory):
    "`eval` with one validation 3 of a hard-linked sample copy replaced by a FIFO, and by a PNG declaring 20000x20000 pixels."
    runs = {}
    for kind in ('fifo', 'bomb'):
        base = tmp_path_factory.mktemp(kind)
        root = Path(shutil.copytree(sample_root, base/'mnist_sample', copy_function=os.link))
        victim = sorted((root/'valid'/'3').glob('*.png'))[-1]
        victim.unlink()
        if kind == 'fifo': os.mkfifo(victim)
        else: victim.write_bytes(png_header(20000, 20000))
        runs[kind] = ({**env, 'MNIST37_DATA': str(base), 'MNIST37_CACHE': str(base/'cache')}, victim)
    with ThreadPoolExecutor(2) as ex:
        futures = {k: ex.submit(run, e, 'eval', model, timeout=FIFO_TIMEOUT) for k, (e, _) in runs.items()}
        return {k: (f.result(), runs[k][1]) for k, f in futures.items()}

@pytest.mark.parametrize('kind,words', [('fifo', ['a FIFO']), ('bomb', ['20000x20000'])])
def test_eval_on_a_damaged_dataset_is_one_clear_line(damaged_dataset_runs, kind, words):
    p, victim = damaged_dataset_runs[kind]
    fails(p, 1, victim.name, *words)

@pytest.mark.as_user
def test_SHA256SUMS_that_is_not_text(tmp_path, tiny_tgz):
    (tiny_tgz.parent/'SHA256SUMS').write_bytes(b'\xff\xfe\x00garbage ' + bytes(range(256)))
    with pytest.raises(MNISTDataError) as ei: verify_checksum(tiny_tgz)
    assert 'SHA256SUMS' in one_line(error_text(ei))
    with pytest.raises(MNISTDataError): extract_archive(tiny_tgz, tmp_path/'out'/'mnist_sample', {'a/3': 2})
    assert leftovers(tmp_path/'out') == []

@pytest.mark.as_user
@pytest.mark.parametrize('kind', ['garbage-bytes', 'no-section', 'no-data-key', 'a-folder'])
def test_broken_fastai_config_ini(monkeypatch, tmp_path, kind):
    "A config.ini fastai cannot use: one line naming it, whatever is wrong with it."
    home = tmp_path/'home'; home.mkdir(); cfg = home/'config.ini'
    if kind == 'garbage-bytes': cfg.write_bytes(b'\xff\xfe\x80\x81 not text \x00\n')
    elif kind == 'no-section': cfg.write_text('data = data\n')
    elif kind == 'no-data-key': cfg.write_text('[DEFAULT]\narchive = archive\n')
    else: cfg.mkdir()
    monkeypatch.setenv('FASTAI_HOME', str(home))
    import fastai.data.external
    fastai.data.external.fastai_cfg.cache_clear()   # fastai reads FASTAI_HOME once
    with pytest.raises(MNISTDataError) as ei: fastai_data_dir()
    assert 'config.ini' in one_line(error_text(ei))


# ---------------------------------------------------------------- 8. a failed check or write leaves nothing

def chattr(flag, folder):
    "Set the attribute `flag` ('+a', '-i'...) of `folder`, or skip the test if this machine cannot."
    if not ROOT: pytest.skip("chattr +a and +i need root (CAP_LINUX_IMMUTABLE)")
    if shutil.which('chattr') is None: pytest.skip("chattr is not installed")
    p = subprocess.run(['chattr', flag, str(folder)], capture_output=True, text=True)
    if p.returncode: pytest.skip(f"chattr {flag} failed here: {p.stderr.strip()}")

@pytest.mark.parametrize('flag,word', [('a', 'is append-only'), ('i', 'is immutable')])
def test_append_only_or_immutable_folder_is_refused_leaving_nothing(tmp_path, flag, word):
    out = tmp_path/'out'; out.mkdir(); (out/'old.pt').write_bytes(b'old')
    chattr(f'+{flag}', out)
    try:
        for target in ('new.pt', 'old.pt'):
            with pytest.raises(ValueError, match=word): check_output_file(out/target)
            with pytest.raises(ValueError, match=word): check_output_folder(out, [target])
            with pytest.raises(OSError, match=word): atomic_write(out/target, lambda f: f.write(b'new'))
        assert listing(out) == [Path('old.pt')] and (out/'old.pt').read_bytes() == b'old'
    finally: chattr(f'-{flag}', out)

@pytest.mark.as_user
def test_a_long_legal_name_can_be_checked_and_written(tmp_path):
    "A 250-byte file name is legal: the probe and the temporary file beside it must not need a longer one."
    for name in ('x' * 247 + '.pt', 'é' * 123 + '.pt'):
        target = tmp_path/name
        assert len(os.fsencode(name)) <= 255
        assert check_output_file(target) == target
        check_writable(target)
        atomic_write(target, lambda f: f.write(b'model'))
        assert target.read_bytes() == b'model' and listing(tmp_path) == [Path(name)]
        target.unlink()

@pytest.mark.as_user
def test_a_file_where_the_folder_should_be(tmp_path):
    (tmp_path/'file').write_text('not a folder')
    for raw in (tmp_path/'file'/'x.pt', tmp_path/'file'/'sub'/'x.pt'):
        with pytest.raises(ValueError) as ei: check_output_file(raw)
        assert f'{tmp_path/"file"} is a file' in str(ei.value) and 'does not exist' not in str(ei.value), ei.value
    with pytest.raises(ValueError, match='is a file'): check_output_folder(tmp_path/'file'/'res', ['results.json'])
    with pytest.raises(ValueError, match='does not exist'): check_output_file(tmp_path/'nothing'/'x.pt')


# ---------------------------------------------------------------- 10. extraction: the true cause, the installed result

@pytest.mark.parametrize('code,words', [(errno.ENOSPC, 'No space left on device'), (errno.EROFS, 'Read-only file system')])
def test_full_disk_while_extracting_is_not_a_damaged_archive(tmp_path, tiny_tgz, monkeypatch, code, words):
    real = tarfile.TarFile.extractall
    def fill_the_disk(self, path='.', members=None, **kwargs):
        real(self, path, list(members)[:1], **kwargs)
        raise OSError(code, os.strerror(code), str(Path(path)/'mnist_sample'/'a'/'3'/'1.png'))
    monkeypatch.setattr(tarfile.TarFile, 'extractall', fill_the_disk)
    dest = tmp_path/'data'/'mnist_sample'
    with pytest.raises(MNISTDataError) as ei: extract_archive(tiny_tgz, dest, {'a/3': 2})
    msg = one_line(error_text(ei))
    assert words in msg and 'damaged' not in msg and str(dest.parent) in msg, msg
    assert leftovers(dest.parent) == []

LINKED = {   # archives whose links resolve inside the temporary folder, but not once the dataset is moved in place
    'symlink valid': [('v/3/0.png', tarfile.REGTYPE, ''), ('mnist_sample/a/3/0.png', tarfile.REGTYPE, ''),
                      ('mnist_sample/valid', tarfile.SYMTYPE, '../v')],
    'symlink top':   [('v/a/3/0.png', tarfile.REGTYPE, ''), ('v/valid/3/0.png', tarfile.REGTYPE, ''),
                      ('mnist_sample', tarfile.SYMTYPE, 'v')],
}

def linked_tgz(fn, members):
    buf = io.BytesIO(); Image.new('L', (28, 28)).save(buf, 'PNG'); png = buf.getvalue()
    with tarfile.open(fn, 'w:gz') as tf:
        for name, kind, link in members:
            info = tarfile.TarInfo(name); info.type, info.linkname = kind, link
            if kind == tarfile.REGTYPE: info.size = len(png)
            tf.addfile(info, io.BytesIO(png) if kind == tarfile.REGTYPE else None)
    return fn

@pytest.mark.parametrize('with_filter', [True, False], ids=['tarfile-filter', 'no-filter'])
@pytest.mark.parametrize('case', LINKED)
def test_what_is_installed_is_what_is_checked(tmp_path, monkeypatch, case, with_filter):
    """Were a link to get past `safe_members` (it refuses them today), the dataset is checked where it is installed:
    a link that dangles there is refused and nothing is left behind."""
    if not with_filter: monkeypatch.setattr(data, '_DATA_FILTER', {})
    elif not data._DATA_FILTER: pytest.skip("this Python's tarfile has no extraction filter")
    monkeypatch.setattr(data, 'safe_members', lambda members, archive: members)
    fn = linked_tgz(tmp_path/'mnist_sample.tgz', LINKED[case])
    dest = tmp_path/'data'/'mnist_sample'
    with pytest.raises(MNISTDataError): extract_archive(fn, dest, {'a/3': 1, 'valid/3': 1})
    assert not os.path.lexists(dest) and leftovers(dest.parent) == []


# ---------------------------------------------------------------- 11. load_split's and load_digit's arguments

@pytest.mark.as_user
def test_load_split_needs_one_whole_label_per_class(sample_root):
    valid = sample_root/'valid'
    for labels in ((1,), (1, 0, 2), [1]):
        with pytest.raises(ValueError, match='one label per class'): load_split(valid, '37', labels=labels)
    with pytest.raises(TypeError, match='whole number'): load_split(valid, '37', labels=(1.5, 0))
    with pytest.raises(ValueError, match='>= 0'): load_split(valid, '37', labels=(1, -1))
    for classes in ('', [], 37, ['3', 7]):
        with pytest.raises(ValueError, match='classes'): load_split(valid, classes)
    x, y = load_split(valid, ['3', '7'], labels=(1, 0))
    assert len(x) == len(y) == 2038

def test_load_digit_and_load_sample_need_a_path(sample_root):
    for bad in ([str(sample_root/'valid'/'3')], None, 3):
        with pytest.raises(TypeError, match='path'): load_digit(bad)
    with pytest.raises(TypeError): load_split([str(sample_root/'valid')], '37')
    with pytest.raises(TypeError): data.load_sample([str(sample_root)])


# ---------------------------------------------------------------- permissions, which root ignores

@pytest.mark.as_user
def test_what_cannot_be_read_or_written_says_so(tmp_path, digits):
    "An unreadable dataset PNG, an unreadable model file, a read-only --out folder: each one line that says so."
    from mnist37.modelfile import read_model
    (tmp_path/'m.pt').write_bytes(b'PK\x03\x04')
    (tmp_path/'ro').mkdir()
    for p, mode in ((digits/'1.png', 0), (tmp_path/'m.pt', 0), (tmp_path/'ro', 0o500)): os.chmod(p, mode)
    try:
        if os.access(tmp_path/'m.pt', os.R_OK): pytest.skip("root reads and writes whatever the permissions; `make test` runs this as nobody")
        with pytest.raises(MNISTDataError, match='1.png is not a readable PNG .Permission denied.'): load_digit(digits, cache=False)
        with pytest.raises(Exception, match='m.pt cannot be read: Permission denied'): read_model(tmp_path/'m.pt')
        with pytest.raises(ValueError, match='cannot write in the folder'): check_output_file(tmp_path/'ro'/'m.pt')
        assert listing(tmp_path/'ro') == []
    finally:
        for p in (digits/'1.png', tmp_path/'m.pt', tmp_path/'ro'): os.chmod(p, 0o700)
