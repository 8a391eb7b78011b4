"""Fixtures shared by the tests: where the MNIST archives are, one extracted copy of the sample,
and a sandbox so that no test touches the user's real ~/.fastai or ~/.cache."""
import os, shutil, subprocess, sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Offline machines keep the archives in ../shared/data (the Makefile exports the same default).
_shared = REPO.parent/'shared'/'data'
if not os.environ.get('MNIST37_DATA') and _shared.is_dir(): os.environ['MNIST37_DATA'] = str(_shared)
DATA_DIR = Path(os.environ['MNIST37_DATA']).expanduser() if os.environ.get('MNIST37_DATA') else None

NO_DATA = ("no MNIST data found: set MNIST37_DATA to a folder holding mnist_sample.tgz and mnist_png.tgz "
           f"(the Makefile uses {_shared} when it exists)")


def pytest_configure(config):
    # fastai's import warns about torch.jit.script; it is noise here, as in every notebook.
    config.addinivalue_line('filterwarnings', 'ignore:.*torch.jit.script.*deprecated')
    # root ignores file permissions: `make test` runs these again as an unprivileged user (the Makefile's as-user)
    config.addinivalue_line('markers', 'as_user: a hostile-input test that `make test` also runs as a user other than root')


_passed = pytest.StashKey[bool]()

@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    if rep.when == 'call': item.stash[_passed] = rep.passed
    return rep


def _clear_fastai_cfg():
    # fastai reads FASTAI_HOME once and caches its Config: forget it so the patched value is used.
    ext = sys.modules.get('fastai.data.external')
    if ext is not None: ext.fastai_cfg.cache_clear()


@pytest.fixture(autouse=True)
def sandbox(request, tmp_path, monkeypatch):
    "Every test gets its own FASTAI_HOME and MNIST37_CACHE under `tmp_path`; returns fastai's data folder there."
    monkeypatch.setenv('FASTAI_HOME', str(tmp_path/'fastai_home'))
    monkeypatch.setenv('MNIST37_CACHE', str(tmp_path/'cache'))
    _clear_fastai_cfg()
    yield tmp_path/'fastai_home'/'data'
    _clear_fastai_cfg()
    # Extracted datasets are big (up to 70000 files) and pytest keeps tmp folders for 3 runs: keep a test's
    # folder only when it failed, to look at.
    if request.node.stash.get(_passed, False): shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.fixture(scope='session')
def data_dir():
    "The folder MNIST37_DATA named when the session started (read-only: never write there)."
    if DATA_DIR is None or not DATA_DIR.is_dir(): pytest.skip(NO_DATA)
    return DATA_DIR


def _archive(data_dir, name):
    fn = data_dir/f'{name}.tgz'
    if not fn.is_file(): pytest.skip(f"{fn} not found: {NO_DATA}")
    return fn


@pytest.fixture(scope='session')
def sample_tgz(data_dir): return _archive(data_dir, 'mnist_sample')


@pytest.fixture(scope='session')
def full_tgz(data_dir): return _archive(data_dir, 'mnist_png')


@pytest.fixture(scope='session')
def sample_root(tmp_path_factory, data_dir):
    "A good `mnist_sample` folder, extracted once per session. Tests must not change it: damage a `sample_copy`."
    if (data_dir/'mnist_sample').is_dir() and not (data_dir/'mnist_sample.tgz').is_file():
        yield data_dir/'mnist_sample'; return
    from mnist37.data import SAMPLE_COUNTS, extract_archive   # safe on every Python, with tarfile's filter or without
    tgz = _archive(data_dir, 'mnist_sample')
    dest = tmp_path_factory.mktemp('extracted')
    yield extract_archive(tgz, dest/'mnist_sample', SAMPLE_COUNTS)
    shutil.rmtree(dest, ignore_errors=True)


def _link_or_copy(src, dst):
    try: os.link(src, dst)
    except OSError: shutil.copy2(src, dst)


@pytest.fixture
def sample_copy(sample_root):
    """`sample_copy(parent, skip=(), sub='')` copies `sample_root/sub` (all of it by default) to
    `parent/<its name>`, leaving out the relative paths in `skip`, and returns the copy.
    Files are hard links when possible (fast): delete or replace a file, never rewrite one in place."""
    def _copy(parent, skip=(), sub=''):
        src = sample_root/sub if sub else sample_root
        dst = Path(parent)/src.name
        skip = {str(src/s) for s in skip}
        ignore = lambda d, names: [n for n in names if os.path.join(d, n) in skip]
        Path(parent).mkdir(parents=True, exist_ok=True)
        return Path(shutil.copytree(src, dst, ignore=ignore, copy_function=_link_or_copy))
    return _copy


@pytest.fixture(scope='session')
def full_root(request, data_dir, tmp_path_factory):
    """Full MNIST's `mnist_png` folder, extracted from MNIST37_DATA's archive and kept in pytest's cache folder
    (`.pytest_cache/d/mnist37-full`, with its decoded images) for later runs: extracting and deleting 70,000
    files takes longer than all the tests that use them. Checked on every run; extracted again if incomplete."""
    from mnist37.data import FULL_COUNTS, MNISTDataError, check_dataset, sha256
    tgz = data_dir/'mnist_png.tgz'
    if not tgz.is_file(): pytest.skip(f"{tgz} not found: the --dataset full tests need full MNIST")
    try: base = request.config.cache.mkdir('mnist37-full')
    except AttributeError: base = tmp_path_factory.mktemp('mnist37-full')     # pytest's cache is switched off
    home = base/sha256(tgz)[:12]                                               # a new archive: a new folder
    try: return check_dataset(home/'mnist_png', FULL_COUNTS)
    except MNISTDataError: pass                                                # absent, or an extraction cut short
    for old in base.iterdir(): shutil.rmtree(old, ignore_errors=True)
    tmp = base/f'.extracting-{os.getpid()}'
    tmp.mkdir()
    if shutil.which('tar'): subprocess.run(['tar', '-xzf', str(tgz), '-C', str(tmp)], check=True)   # 3x faster than tarfile
    else:
        from mnist37.data import extract_archive
        extract_archive(tgz, tmp/'mnist_png', FULL_COUNTS)
    home.mkdir()
    (tmp/'mnist_png').rename(home/'mnist_png')
    tmp.rmdir()
    return check_dataset(home/'mnist_png', FULL_COUNTS)


@pytest.fixture(scope='session')
def both_data(tmp_path_factory, sample_root, full_root):
    "A folder for MNIST37_DATA holding the sample and full MNIST, both already extracted (links to `sample_root`, `full_root`)."
    d = tmp_path_factory.mktemp('both-data')
    (d/'mnist_sample').symlink_to(sample_root, target_is_directory=True)
    (d/'mnist_png').symlink_to(full_root, target_is_directory=True)
    return d
