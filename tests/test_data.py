"""Tests of `mnist37.data`: finding the MNIST data (MNIST37_DATA, fastai's cache, download), checking it,
extracting it safely, loading it in the book's order, and caching the decoded images.

Every test runs with FASTAI_HOME and MNIST37_CACHE in its own tmp folder (the `sandbox` fixture in conftest.py).
"""
import errno, hashlib, io, os, shutil, subprocess, sys, tarfile, time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import mnist37.data as data
from mnist37.data import (FULL_COUNTS, SAMPLE_COUNTS, MNISTDataError, cache_dir, check_dataset, digit_files,
                          extract_archive, load_digit, load_digit_bytes, load_sample, mnist_full_path,
                          mnist_sample_path, verify_checksum)


# ---------------------------------------------------------------- helpers

def error_text(excinfo, from_none=False):
    "The message of a raised MNISTDataError, after checking it is one clean error (no library traceback chained)."
    e = excinfo.value
    assert type(e) is MNISTDataError and isinstance(e, RuntimeError)
    assert e.__cause__ is None
    if from_none: assert e.__suppress_context__, "expected `raise ... from None`"
    else: assert e.__context__ is None or e.__suppress_context__, f"chained traceback: {e.__context__!r}"
    return str(e)

def leftovers(data_dir, name='mnist_sample'):
    "What an extraction of `name` left in fastai's data folder: the folder itself and any temporary folders."
    if not data_dir.exists(): return []
    return sorted(p.name for p in data_dir.iterdir() if p.name == name or p.name.startswith(f'.{name}-partial-'))

def png_names(folder): return sorted(n for n in os.listdir(folder) if n.endswith('.png'))

def count_pngs(root, rels): return {rel: len(png_names(root/rel)) for rel in rels}

def book_stack(folder):
    "The book's way: `.ls().sorted()`, PIL, `torch.stack(...).float()/255`."
    import fastcore.xtras  # noqa: F401  (adds Path.ls)
    files = [o for o in Path(folder).ls().sorted() if o.suffix == '.png']
    return torch.stack([torch.tensor(np.array(Image.open(o))) for o in files]).float()/255

def pil_digit(fname): return torch.tensor(np.array(Image.open(fname))).float()/255

def write_png(fname, mode='L', size=(28, 28), value=0): Image.new(mode, size, value).save(fname)

def no_download(*args, **kwargs): raise AssertionError("fastai's download must not be attempted here")


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope='session')
def sample_sha256(sample_tgz):
    "The archive's real SHA-256, computed here and checked against the SHA256SUMS shipped beside it."
    got = hashlib.sha256(sample_tgz.read_bytes()).hexdigest()
    sums = sample_tgz.parent/'SHA256SUMS'
    if sums.is_file():
        listed = {ln.split()[-1].lstrip('*'): ln.split()[0] for ln in sums.read_text().splitlines() if ln.strip()}
        assert listed.get(sample_tgz.name, got) == got, f"{sums} does not match {sample_tgz}"
    return got

@pytest.fixture(scope='module')
def reference(sample_root):
    "`load_sample` of the good tree decoded without the cache: (train_x, train_y, valid_x, valid_y)."
    return load_sample(sample_root, cache=False)

@pytest.fixture(scope='module')
def filled_cache(tmp_path_factory, sample_root):
    "A cache folder filled by one cold `load_sample()` (default path: MNIST37_DATA names the extracted tree); (folder, result)."
    folder = tmp_path_factory.mktemp('cache')
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv('MNIST37_CACHE', str(folder))
        mp.setenv('MNIST37_DATA', str(sample_root.parent))
        return folder, load_sample()

@pytest.fixture
def src(tmp_path):
    "An empty folder to point MNIST37_DATA at."
    p = tmp_path/'src'; p.mkdir(); return p

@pytest.fixture
def tiny_tgz(tmp_path):
    "A small archive `mnist_sample.tgz` holding `mnist_sample/a/3/{0,1}.png`, for `extract_archive` with counts {'a/3': 2}."
    build = tmp_path/'build'/'mnist_sample'/'a'/'3'; build.mkdir(parents=True)
    for i in range(2): write_png(build/f'{i}.png', value=i)
    fn = tmp_path/'tiny'/'mnist_sample.tgz'; fn.parent.mkdir()
    with tarfile.open(fn, 'w:gz') as tf: tf.add(build.parent.parent, arcname='mnist_sample')
    return fn


# ---------------------------------------------------------------- counts and check_dataset

def test_sample_counts(sample_root):
    found = count_pngs(sample_root, SAMPLE_COUNTS)
    assert found == SAMPLE_COUNTS == {'train/3': 6131, 'train/7': 6265, 'valid/3': 1010, 'valid/7': 1028}
    assert sum(found.values()) == 14434

def test_full_counts_constant():
    assert sum(n for k,n in FULL_COUNTS.items() if k.startswith('training/')) == 60000
    assert sum(n for k,n in FULL_COUNTS.items() if k.startswith('testing/')) == 10000
    assert len(FULL_COUNTS) == 20 and FULL_COUNTS['training/3'] == 6131 and FULL_COUNTS['testing/7'] == 1028

def test_check_dataset_returns_the_path(sample_root):
    assert check_dataset(sample_root) == sample_root
    assert check_dataset(str(sample_root)) == sample_root   # a str in, a Path out

def test_check_dataset_class_folder_removed(tmp_path, sample_copy, monkeypatch, sandbox):
    root = sample_copy(tmp_path/'src', skip=['valid/7'])
    with pytest.raises(MNISTDataError) as ei: check_dataset(root)
    msg = error_text(ei)
    assert 'valid/7: missing (expected 1028)' in msg and str(root) in msg and 'MNIST37_DATA' in msg
    for ok in ('train/3', 'train/7', 'valid/3'): assert ok not in msg   # only what is wrong
    # the same one error through mnist_sample_path, and nothing written to fastai's folder
    monkeypatch.setenv('MNIST37_DATA', str(root.parent))
    with pytest.raises(MNISTDataError) as ei: mnist_sample_path()
    assert 'valid/7: missing (expected 1028)' in error_text(ei)
    assert leftovers(sandbox) == []

def test_check_dataset_partial_class_folder(tmp_path, sample_copy):
    root = sample_copy(tmp_path/'src', skip=['train/3/10.png'])
    with pytest.raises(MNISTDataError) as ei: check_dataset(root)
    msg = error_text(ei)
    assert 'train/3: 6130 (expected 6131)' in msg and 'incomplete' in msg and 'MNIST37_DATA' in msg


# ---------------------------------------------------------------- where the data is found

def test_path_from_extracted_folder_in_MNIST37_DATA(monkeypatch, sample_root, sandbox):
    monkeypatch.setenv('MNIST37_DATA', str(sample_root.parent))
    assert mnist_sample_path() == sample_root
    assert leftovers(sandbox) == []   # used in place, nothing copied

def test_path_from_fastai_cache(monkeypatch, tmp_path, sample_copy, sandbox):
    import fastai.data.external
    monkeypatch.setattr(fastai.data.external, 'untar_data', no_download)
    monkeypatch.delenv('MNIST37_DATA', raising=False)
    sample_copy(sandbox)
    assert mnist_sample_path() == sandbox/'mnist_sample'

def test_interrupted_extraction_leaves_nothing_then_retry_extracts(monkeypatch, data_dir, sample_tgz, sandbox):
    "Also the plain case: MNIST37_DATA holds the .tgz (and SHA256SUMS), so it is extracted into fastai's folder."
    monkeypatch.setenv('MNIST37_DATA', str(data_dir))
    real_extractall = tarfile.TarFile.extractall
    def extract_a_few_then_interrupt(self, path='.', members=None, **kwargs):
        for i, m in enumerate(self):
            if i == 200: raise KeyboardInterrupt
            self.extract(m, path, **kwargs)
    monkeypatch.setattr(tarfile.TarFile, 'extractall', extract_a_few_then_interrupt)
    with pytest.raises(KeyboardInterrupt): mnist_sample_path()
    assert leftovers(sandbox) == []
    monkeypatch.setattr(tarfile.TarFile, 'extractall', real_extractall)
    p = mnist_sample_path()
    assert p == sandbox/'mnist_sample' and leftovers(sandbox) == ['mnist_sample']
    assert count_pngs(p, SAMPLE_COUNTS) == SAMPLE_COUNTS
    # a second call finds the extracted copy: no second extraction
    monkeypatch.setattr(data, 'extract_archive', lambda *a, **k: pytest.fail('extracted twice'))
    assert mnist_sample_path() == p

def test_damaged_earlier_extraction_is_replaced(monkeypatch, tmp_path, sample_copy, data_dir, sample_tgz, sandbox):
    import fastai.data.external
    monkeypatch.setattr(fastai.data.external, 'untar_data', no_download)
    dest = sample_copy(sandbox, skip=['valid/7'])
    (dest/'stale-marker').touch()
    # without MNIST37_DATA, the damaged copy is reported (and not downloaded over)
    monkeypatch.delenv('MNIST37_DATA', raising=False)
    with pytest.raises(MNISTDataError) as ei: mnist_sample_path()
    msg = error_text(ei)
    assert 'valid/7: missing (expected 1028)' in msg and str(dest) in msg and 'MNIST37_DATA' in msg
    # with the archive in MNIST37_DATA, it is replaced by a good copy
    monkeypatch.setenv('MNIST37_DATA', str(data_dir))
    assert mnist_sample_path() == dest
    assert count_pngs(dest, SAMPLE_COUNTS) == SAMPLE_COUNTS
    assert not (dest/'stale-marker').exists()
    assert leftovers(sandbox) == ['mnist_sample']

CHILD = r"""
import sys, time
from pathlib import Path
import mnist37.data, fastai.data.external   # the slow imports happen before the start signal
Path(sys.argv[2]).touch()
while not Path(sys.argv[1]).exists(): time.sleep(0.001)
print(mnist37.data.mnist_sample_path())
"""

def test_two_processes_extracting_at_once(tmp_path, data_dir, sample_tgz, sandbox):
    env = {**os.environ, 'MNIST37_DATA': str(data_dir), 'PYTHONWARNINGS': 'ignore'}  # sandbox's FASTAI_HOME
    go = tmp_path/'go'
    ready = [tmp_path/f'ready{i}' for i in range(2)]
    procs = [subprocess.Popen([sys.executable, '-c', CHILD, str(go), str(r)], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for r in ready]
    try:
        deadline = time.monotonic() + 180
        while not all(r.exists() for r in ready):
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
            assert time.monotonic() < deadline, "the child processes never got ready"
            time.sleep(0.02)
        go.touch()   # both start extracting now
        outs = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None: p.kill()
    for p, (out, err) in zip(procs, outs): assert p.returncode == 0, err
    paths = [out.strip() for out, _ in outs]
    assert paths[0] == paths[1] == str(sandbox/'mnist_sample')
    assert check_dataset(paths[0]) == sandbox/'mnist_sample'
    assert leftovers(sandbox) == ['mnist_sample']

def test_fastai_data_dir_while_another_process_writes_config_ini(sandbox):
    "The moment another process has created $FASTAI_HOME/config.ini but not yet written it."
    import threading, fastai.data.external  # noqa: F401  (imported before the clock starts)
    cfg = sandbox.parent/'config.ini'
    cfg.parent.mkdir(); cfg.write_text('')
    writer = threading.Timer(0.2, cfg.write_text, ['[DEFAULT]\ndata = data\narchive = archive\nstorage = tmp\nmodel = models\n'])
    writer.start()
    try: assert data.fastai_data_dir() == sandbox
    finally: writer.join()

def test_full_path_from_archive(monkeypatch, data_dir, full_tgz, sandbox):
    monkeypatch.setenv('MNIST37_DATA', str(data_dir))
    p = mnist_full_path()
    assert p == sandbox/'mnist_png'
    found = count_pngs(p, FULL_COUNTS)
    assert found == FULL_COUNTS
    assert sum(n for k,n in found.items() if k.startswith('training/')) == 60000
    assert sum(n for k,n in found.items() if k.startswith('testing/')) == 10000
    assert check_dataset(p, FULL_COUNTS) == p
    assert leftovers(sandbox, 'mnist_png') == ['mnist_png']

def test_no_data_and_no_download_is_one_clear_error(monkeypatch, sandbox):
    monkeypatch.delenv('MNIST37_DATA', raising=False)
    # make the download fail fast, whether or not this machine has internet: a proxy nobody listens on
    for v in ('http_proxy', 'https_proxy', 'HTTP_PROXY', 'HTTPS_PROXY'): monkeypatch.setenv(v, 'http://127.0.0.1:9')
    for v in ('no_proxy', 'NO_PROXY', 'all_proxy', 'ALL_PROXY'): monkeypatch.delenv(v, raising=False)
    import fastai.data.external  # noqa: F401  (its import time is not the download's)
    t = time.perf_counter()
    with pytest.raises(MNISTDataError) as ei: mnist_sample_path()
    if (elapsed := time.perf_counter() - t) > 20: pytest.skip(f"fastai's failing download took {elapsed:.0f} s")
    msg = error_text(ei, from_none=True)
    assert 'mnist_sample is not in' in msg and str(sandbox) in msg and 'downloading it failed' in msg
    assert 'MNIST37_DATA' in msg and 'mnist_sample.tgz' in msg
    assert leftovers(sandbox) == []


# ---------------------------------------------------------------- missing, empty or damaged data

@pytest.mark.parametrize('get', [mnist_sample_path, mnist_full_path])
def test_MNIST37_DATA_not_a_folder(monkeypatch, tmp_path, sandbox, get):
    for bad in (tmp_path/'does-not-exist', tmp_path/'a-file'):
        if bad.name == 'a-file': bad.write_text('x')
        monkeypatch.setenv('MNIST37_DATA', str(bad))
        with pytest.raises(MNISTDataError) as ei: get()
        msg = error_text(ei)
        assert f'MNIST37_DATA is set to {bad}, which is not a folder' in msg
    assert not sandbox.exists()

@pytest.mark.parametrize('get,name', [(mnist_sample_path, 'mnist_sample'), (mnist_full_path, 'mnist_png')])
def test_MNIST37_DATA_without_the_dataset(monkeypatch, src, sandbox, get, name):
    monkeypatch.setenv('MNIST37_DATA', str(src))
    with pytest.raises(MNISTDataError) as ei: get()
    msg = error_text(ei)
    assert f'MNIST37_DATA is set to {src}, which holds neither {name}/ nor {name}.tgz' in msg
    assert leftovers(sandbox, name) == []

def test_empty_extracted_folder(monkeypatch, src, sandbox):
    (src/'mnist_sample').mkdir()
    monkeypatch.setenv('MNIST37_DATA', str(src))
    with pytest.raises(MNISTDataError) as ei: mnist_sample_path()
    msg = error_text(ei)
    for rel, n in SAMPLE_COUNTS.items(): assert f'{rel}: missing (expected {n})' in msg
    assert str(src/'mnist_sample') in msg and 'MNIST37_DATA' in msg
    assert leftovers(sandbox) == []

def test_empty_folder_in_fastai_cache(monkeypatch, sandbox):
    import fastai.data.external
    monkeypatch.setattr(fastai.data.external, 'untar_data', no_download)
    monkeypatch.delenv('MNIST37_DATA', raising=False)
    (sandbox/'mnist_sample').mkdir(parents=True)
    with pytest.raises(MNISTDataError) as ei: mnist_sample_path()
    msg = error_text(ei)
    assert 'train/3: missing (expected 6131)' in msg and str(sandbox/'mnist_sample') in msg and 'MNIST37_DATA' in msg

def test_truncated_archive_with_checksum(monkeypatch, src, sample_tgz, sample_sha256, sandbox):
    b = sample_tgz.read_bytes()
    (src/'mnist_sample.tgz').write_bytes(b[:len(b)//2])
    (src/'SHA256SUMS').write_text(f'{sample_sha256}  mnist_sample.tgz\n')
    monkeypatch.setenv('MNIST37_DATA', str(src))
    with pytest.raises(MNISTDataError) as ei: mnist_sample_path()
    msg = error_text(ei)
    assert 'does not match its checksum' in msg and str(src/'mnist_sample.tgz') in msg and sample_sha256 in msg
    assert leftovers(sandbox) == []

def test_truncated_archive_without_checksum(monkeypatch, src, sample_tgz, sandbox):
    b = sample_tgz.read_bytes()
    (src/'mnist_sample.tgz').write_bytes(b[:len(b)//2])
    monkeypatch.setenv('MNIST37_DATA', str(src))
    with pytest.raises(MNISTDataError) as ei: mnist_sample_path()
    msg = error_text(ei, from_none=True)
    assert 'could not be extracted' in msg and 'truncated or damaged' in msg and str(src/'mnist_sample.tgz') in msg
    assert leftovers(sandbox) == []

def test_checksum_mismatch(monkeypatch, src, sample_tgz, sample_sha256, sandbox):
    shutil.copy(sample_tgz, src)
    wrong = hashlib.sha256(b'not the archive').hexdigest()
    (src/'SHA256SUMS').write_text(f'{wrong}  mnist_sample.tgz\n')
    monkeypatch.setenv('MNIST37_DATA', str(src))
    with pytest.raises(MNISTDataError) as ei: mnist_sample_path()
    msg = error_text(ei)
    assert 'does not match its checksum' in msg and f'expected {wrong}' in msg and f'got {sample_sha256}' in msg
    assert leftovers(sandbox) == []

@pytest.fixture
def sha256_calls(monkeypatch):
    "Record every file `verify_checksum` hashes (through the name it looks up, `mnist37.data.sha256`), still hashing it for real."
    calls, real = [], data.sha256
    def recording(fname, *a, **k): calls.append(Path(fname)); return real(fname, *a, **k)
    monkeypatch.setattr(data, 'sha256', recording)
    return calls

def test_verify_checksum_accepts_good_sums(src, sample_tgz, sample_sha256, sha256_calls):
    shipped = sample_tgz.parent/'SHA256SUMS'
    verify_checksum(sample_tgz)                                   # the shipped SHA256SUMS, when it lists the archive
    assert sha256_calls == ([sample_tgz] if shipped.is_file() and sample_tgz.name in shipped.read_text() else [])
    os.symlink(sample_tgz, src/'mnist_sample.tgz')
    archive = src/'mnist_sample.tgz'
    sha256_calls.clear(); verify_checksum(archive)                # no SHA256SUMS: nothing to check
    assert sha256_calls == []
    for line in (f'{sample_sha256}  mnist_sample.tgz', f'{sample_sha256.upper()}  mnist_sample.tgz',
                 f'{sample_sha256} *mnist_sample.tgz'):           # text mode, upper case, binary mode
        (src/'SHA256SUMS').write_text(line + '\n')
        sha256_calls.clear(); verify_checksum(archive)
        assert sha256_calls == [archive], line
    (src/'SHA256SUMS').write_text(f'{"0"*64}  other.tgz\n')       # lists another file only: refused, unhashed
    sha256_calls.clear()
    with pytest.raises(MNISTDataError, match='is not listed in'): verify_checksum(archive)
    assert sha256_calls == []

@pytest.mark.parametrize('fmt', ['{h}  {n}', '{H}  {n}', '{h} *{n}'])
def test_verify_checksum_rejects_a_wrong_digest_in_each_format(src, sample_tgz, sample_sha256, fmt):
    os.symlink(sample_tgz, src/'mnist_sample.tgz')
    wrong = hashlib.sha256(b'not the archive').hexdigest()
    (src/'SHA256SUMS').write_text(fmt.format(h=wrong, H=wrong.upper(), n='mnist_sample.tgz') + '\n')
    with pytest.raises(MNISTDataError) as ei: verify_checksum(src/'mnist_sample.tgz')
    assert 'does not match its checksum' in error_text(ei) and f'got {sample_sha256}' in str(ei.value)

def test_extract_archive_rejects_an_incomplete_archive(tmp_path, tiny_tgz):
    dest = tmp_path/'data'/'mnist_sample'
    assert extract_archive(tiny_tgz, dest, {'a/3': 2}) == dest     # the tiny archive is fine for its counts...
    shutil.rmtree(dest)
    with pytest.raises(MNISTDataError) as ei: extract_archive(tiny_tgz, dest, {'a/3': 3})   # ...not for these
    assert 'a/3: 2 (expected 3)' in error_text(ei)
    assert leftovers(dest.parent) == []

def hostile_tgz(fn, member):
    "`fn`, a gzipped archive holding one good PNG in `mnist_sample/a/3/` and then `member` (a `TarInfo`, bytes for a file)."
    fn.parent.mkdir(parents=True, exist_ok=True)
    good = fn.parent/'0.png'; write_png(good)
    with tarfile.open(fn, 'w:gz') as tf:
        tf.add(good, arcname='mnist_sample/a/3/0.png')
        info, data = member
        if data is not None: info.size = len(data)
        tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return fn

def _member(name, kind=tarfile.REGTYPE, data=b'x', linkname=''):
    info = tarfile.TarInfo(name); info.type, info.linkname = kind, linkname
    return info, (data if kind == tarfile.REGTYPE else None)

HOSTILE_MEMBERS = {
    'symlink out':       (_member('mnist_sample/valid', tarfile.SYMTYPE, linkname='../v'), "'mnist_sample/valid', a link"),
    'hard link':         (_member('mnist_sample/a/3/1.png', tarfile.LNKTYPE, linkname='mnist_sample/a/3/0.png'), 'a link'),
    'climbs out':        (_member('mnist_sample/../../evil.png'), "'mnist_sample/../../evil.png', a file outside the archive"),
    'absolute':          (_member('/tmp/evil.png'), "'/tmp/evil.png', a file outside the archive"),
    'device':            (_member('mnist_sample/null', tarfile.CHRTYPE), 'a device or FIFO'),
    'fifo':              (_member('mnist_sample/fifo', tarfile.FIFOTYPE), 'a device or FIFO'),
}

@pytest.mark.parametrize('with_filter', [True, False], ids=['python-with-tarfile-filter', 'python-3.11.2-no-filter'])
@pytest.mark.parametrize('case', HOSTILE_MEMBERS)
def test_extraction_refuses_links_devices_and_escapes_on_every_python(tmp_path, monkeypatch, case, with_filter):
    "Python before 3.11.4 has no `filter=` (Debian 12's 3.11.2): the project's own checks refuse the same members."
    if not with_filter: monkeypatch.setattr(data, '_DATA_FILTER', {})
    elif not data._DATA_FILTER: pytest.skip("this Python's tarfile has no extraction filter")
    member, what = HOSTILE_MEMBERS[case]
    fn = hostile_tgz(tmp_path/'src'/'mnist_sample.tgz', member)
    dest = tmp_path/'data'/'mnist_sample'
    with pytest.raises(MNISTDataError) as ei: extract_archive(fn, dest, {'a/3': 1})
    msg = error_text(ei)
    assert what in msg and 'an MNIST archive holds only folders and PNG files' in msg and str(fn) in msg, msg
    assert not dest.exists() and leftovers(dest.parent) == []
    assert not (tmp_path/'evil.png').exists() and not (tmp_path/'data'/'evil.png').exists()

def test_extraction_without_a_filter_gives_plain_files(tmp_path, monkeypatch):
    "With no `filter=`, a good archive's setuid bits and world-writable modes are dropped by hand, as the filter drops them."
    monkeypatch.setattr(data, '_DATA_FILTER', {})
    info, body = _member('mnist_sample/a/3/1.png', data=b'')
    png = tmp_path/'1.png'; write_png(png, value=1); body = png.read_bytes()
    info.mode = 0o6777
    fn = hostile_tgz(tmp_path/'src'/'mnist_sample.tgz', (info, body))
    dest = extract_archive(fn, tmp_path/'data'/'mnist_sample', {'a/3': 2})
    modes = {p.name: p.stat().st_mode & 0o7777 for p in (dest/'a'/'3').iterdir()}
    assert modes['1.png'] & 0o6022 == 0 and (dest/'a'/'3'/'1.png').stat().st_uid == os.geteuid(), modes

def test_incomplete_archive_message_names_the_archive(tmp_path, tiny_tgz):
    dest = tmp_path/'data'/'mnist_sample'
    with pytest.raises(MNISTDataError) as ei: extract_archive(tiny_tgz, dest, {'a/3': 3})
    msg = str(ei.value)
    assert str(tiny_tgz) in msg and '-partial-' not in msg

def test_replacing_never_leaves_a_complete_dataset_missing(tmp_path, tiny_tgz, monkeypatch):
    dest = tmp_path/'data'/'mnist_sample'
    extract_archive(tiny_tgz, dest, {'a/3': 2})   # "the other process" finished first
    seen, real_move = [], shutil.move
    def move(a, b, *args, **kwargs):
        r = real_move(a, b, *args, **kwargs)
        seen.append(Path(dest, 'a', '3').is_dir())   # what a concurrent mnist_sample_path() would see now
        return r
    monkeypatch.setattr(shutil, 'move', move)
    assert extract_archive(tiny_tgz, dest, {'a/3': 2}) == dest
    assert all(seen), "the complete dataset folder was missing while it was being replaced"


# ---------------------------------------------------------------- reading the images

def test_digit_files_sorted_like_the_book(sample_root):
    import fastcore.xtras  # noqa: F401  (Path.ls)
    for rel, first, last in (('train/3', '10.png', '9991.png'), ('valid/7', '0.png', '9990.png')):
        folder = sample_root/rel
        names = [p.name for p in digit_files(folder)]
        assert names == png_names(folder)                                   # sorted as strings
        assert names == [p.name for p in folder.ls().sorted()]             # the book's .ls().sorted()
        assert (names[0], names[-1]) == (first, last)
        assert len(names) == SAMPLE_COUNTS[rel]

def test_load_digit_matches_the_book(sample_root):
    folder = sample_root/'valid'/'7'
    x = load_digit(folder, cache=False)
    assert x.dtype == torch.float32 and x.shape == (1028, 28, 28)
    assert x.min() == 0 and x.max() == 1
    assert torch.equal(x, book_stack(folder))                               # same images, same order, same floats
    assert torch.equal(x[0], pil_digit(folder/'0.png')) and torch.equal(x[-1], pil_digit(folder/'9990.png'))
    b = load_digit_bytes(folder, cache=False)
    assert b.dtype == torch.uint8 and torch.equal(b.float()/255, x)

def test_load_sample_shapes_labels_and_order(reference, sample_root):
    train_x, train_y, valid_x, valid_y = reference
    assert train_x.shape == (12396, 784) and train_y.shape == (12396, 1)
    assert valid_x.shape == (2038, 784) and valid_y.shape == (2038, 1)
    assert train_x.dtype == valid_x.dtype == torch.float32
    assert 0 <= train_x.min() and train_x.max() <= 1 and 0 <= valid_x.min() and valid_x.max() <= 1
    assert train_y[:6131].eq(1).all() and train_y[6131:].eq(0).all()     # 3s first, labelled 1
    assert valid_y[:1010].eq(1).all() and valid_y[1010:].eq(0).all()
    flat = lambda f: pil_digit(f).view(784)
    assert torch.equal(train_x[0], flat(sample_root/'train/3/10.png'))
    assert torch.equal(train_x[6130], flat(sample_root/'train/3/9991.png'))
    assert torch.equal(train_x[6131], flat(digit_files(sample_root/'train/7')[0]))
    assert torch.equal(valid_x[-1], flat(sample_root/'valid/7/9990.png'))
    assert torch.equal(valid_x[1010:], load_digit(sample_root/'valid/7', cache=False).view(-1, 784))

@pytest.mark.parametrize('damage', ['text', 'truncated'])
def test_unreadable_png(tmp_path, sample_copy, damage):
    folder = sample_copy(tmp_path/'digits', sub='valid/3')
    bad = digit_files(folder)[5]
    good = bad.read_bytes()
    bad.unlink()   # a hard link to the shared copy: replace it, never write through it
    if damage == 'text': bad.write_text('this is not a PNG\n')
    else: bad.write_bytes(good[:len(good)//2])
    for cache in (True, False):
        with pytest.raises(MNISTDataError) as ei: load_digit(folder, cache=cache)
        msg = error_text(ei, from_none=True)
        assert str(bad.resolve()) in msg and 'not a readable PNG' in msg
    assert not cache_dir().exists() or list(cache_dir().iterdir()) == []   # nothing cached, not even a temp file

@pytest.mark.parametrize('mode,size', [('RGB', (28, 28)), ('L', (29, 28))])
def test_png_of_the_wrong_kind(tmp_path, mode, size):
    folder = tmp_path/'digits'; folder.mkdir()
    write_png(folder/'0.png'); write_png(folder/'1.png', mode, size)
    with pytest.raises(MNISTDataError) as ei: load_digit(folder)
    msg = error_text(ei)
    assert str((folder/'1.png').resolve()) in msg and f'{size[0]}x{size[1]} {mode}' in msg and '28x28 grey' in msg

def test_load_digit_on_a_missing_or_empty_folder(tmp_path):
    with pytest.raises(MNISTDataError) as ei: load_digit(tmp_path/'nope')
    assert 'is not a folder of images' in error_text(ei)
    (tmp_path/'empty').mkdir()
    for cache in (True, False):
        with pytest.raises(MNISTDataError) as ei: load_digit(tmp_path/'empty', cache=cache)
        assert 'holds no PNG files' in error_text(ei)


# ---------------------------------------------------------------- the cache

def test_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv('MNIST37_CACHE', str(tmp_path/'c'))
    assert cache_dir() == tmp_path/'c'
    monkeypatch.delenv('MNIST37_CACHE')
    monkeypatch.setenv('HOME', str(tmp_path/'home'))
    assert cache_dir() == tmp_path/'home'/'.cache'/'mnist37'

def test_cached_loads_are_bit_identical(monkeypatch, reference, filled_cache, sample_root):
    folder, cold = filled_cache           # decoded, then written to the cache
    monkeypatch.setenv('MNIST37_CACHE', str(folder))
    assert len(list(folder.glob('*.npy'))) == 4
    warm = load_sample(sample_root)       # read from the cache
    for r, c, w in zip(reference, cold, warm):
        assert r.dtype == c.dtype == w.dtype and torch.equal(r, c) and torch.equal(r, w)
    assert torch.equal(load_digit(sample_root/'valid/7'), load_digit(sample_root/'valid/7', cache=False))
    assert len(list(folder.glob('*.npy'))) == 4   # warm loads write nothing

def test_a_cache_that_cannot_be_written_warns_and_leaves_nothing(monkeypatch, tmp_path, sample_copy):
    "A full disk while the cache is written: the images still load, one warning says so, and the folders made are gone."
    folder = sample_copy(tmp_path/'digits', sub='valid/7')
    monkeypatch.setenv('MNIST37_CACHE', str(tmp_path/'new'/'cache'))
    def full(*a, **k): raise OSError(errno.ENOSPC, 'No space left on device')
    monkeypatch.setattr(data, 'atomic_write', full)
    with pytest.warns(UserWarning, match=r'cache of decoded images cannot be written in .*No space left on device'):
        x = load_digit(folder)
    assert torch.equal(x, load_digit(folder, cache=False)) and not (tmp_path/'new').exists()

# How much faster the warm cache is than decoding the PNGs is measured in bench/ (bench_data), not asserted here: the
# ratio swings when the CPU is shared. That the cached bytes equal the decoded ones: test_cached_loads_are_bit_identical.

def test_cache_follows_files_added_removed_renamed(tmp_path, sample_copy):
    folder = sample_copy(tmp_path/'digits', sub='train/3')
    full = load_digit(folder)
    n = len(full); assert n == 6131
    files = digit_files(folder)
    gone, saved = files[100], files[100].read_bytes()
    gone.unlink()
    x = load_digit(folder)
    assert len(x) == n-1 and torch.equal(x, torch.cat([full[:100], full[101:]]))
    gone.write_bytes(saved)
    x = load_digit(folder)
    assert len(x) == n and torch.equal(x, full)
    files[0].rename(folder/'99999.png')   # '10.png' now sorts last
    x = load_digit(folder)
    assert torch.equal(x, torch.cat([full[1:], full[:1]]))
    assert len(list(cache_dir().glob('*.npy'))) == 1   # stale entries of this folder were removed

def test_damaged_cache_file_is_rebuilt(tmp_path, sample_copy):
    folder = sample_copy(tmp_path/'digits', sub='valid/3')
    good = load_digit(folder)
    (fn,) = cache_dir().glob('*.npy')
    fn.write_bytes(fn.read_bytes()[:1000])      # e.g. a disk that filled up
    assert torch.equal(load_digit(folder), good)
    fn.write_bytes(b'junk')
    assert torch.equal(load_digit(folder), good)

def test_empty_cache_file_is_rebuilt(tmp_path, sample_copy):
    folder = sample_copy(tmp_path/'digits', sub='valid/3')
    good = load_digit(folder)
    (fn,) = cache_dir().glob('*.npy')
    fn.write_bytes(b'')
    assert torch.equal(load_digit(folder), good)

def test_interrupted_cache_write_leaves_no_temp_file(tmp_path, sample_copy, monkeypatch):
    folder = sample_copy(tmp_path/'digits', sub='valid/3')
    def save_then_interrupt(f, arr): f.write(b'\x93NUMPY partial'); raise KeyboardInterrupt
    monkeypatch.setattr(data.np, 'save', save_then_interrupt)
    with pytest.raises(KeyboardInterrupt): load_digit(folder)
    assert not cache_dir().exists()   # no temporary file, and not the cache folder made for it
