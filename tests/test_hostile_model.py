"""Hostile model files, second pass (issue #23, classes 3, 4, 6, 9, 10 and 11 for model files and predictions): numbers
that are not numbers, sizes and strides that would take gigabytes before a refusal, fields out of type or range,
TorchScript and zip records that lie, and the library's own functions given what the command line would refuse.

Each hostile file is a real model record changed in one way and saved by `torch.save`, most with a *valid*
`weights_sha256`: the point is that the checksum does not save you. Files are made under pytest's tmp folders;
every command runs with a timeout (test_hostile's `run`)."""
import contextlib, io, math, resource, struct, subprocess, warnings, zipfile

import numpy as np
import pytest

from test_hostile import TIMEOUT, Hung, env, fails, no_crash, run_all   # noqa: F401  (`env`: a fixture)
from test_cli import MNIST37

torch = pytest.importorskip('torch')
from mnist37.checks import CLIError   # noqa: E402
from mnist37.modelfile import model_record, read_model, save_model, weights_sha256   # noqa: E402
from mnist37.predict import class_probabilities, model_input, predict_images   # noqa: E402
from mnist37.recipes import build_model   # noqa: E402


# ---------------------------------------------------------------- crafting

@pytest.fixture(scope='module')
def rec():
    "The record of an untrained linear model, as `mnist37 train` would write it (no need to train: each file is refused)."
    return model_record(build_model('linear'), 'linear', 0.5, 42, 1)

@pytest.fixture(scope='module')
def a3(sample_root):
    "A validation 3 of the sample."
    return sorted((sample_root/'valid'/'3').glob('*.png'))[0]

def resummed(rec, **fields):
    "`rec` with `fields` changed, and a `weights_sha256` that is right for its weights whenever one can be computed."
    out = {**rec, **fields}
    try: out['weights_sha256'] = weights_sha256(out['state_dict'])
    except Exception: pass   # weights that cannot even be hashed (an int key, a sparse tensor): the old sum stays
    return out

def with_weight(rec, w, name='weight'):
    "`rec` (checksum right) with its tensor `name` replaced by `w`."
    return resummed(rec, state_dict={**rec['state_dict'], name: w})

def zip_records(path):
    "{name: bytes} of the records of the zip at `path`, in order."
    with zipfile.ZipFile(path) as z: return {i.filename: z.read(i) for i in z.infolist()}

def rezip(path, records, compression=zipfile.ZIP_STORED):
    "Write `records` ({name: bytes}) as the zip `path`."
    with zipfile.ZipFile(path, 'w', compression) as z:
        for name, data in records.items(): z.writestr(name, data)
    return path

def declare(path, suffix, size):
    "Make the central directory of the zip at `path` declare `size` bytes for its record ending in `suffix` (a lie)."
    data = bytearray(path.read_bytes())
    i = data.find(b'PK\x01\x02')
    while i >= 0:
        n = struct.unpack_from('<H', data, i + 28)[0]
        if bytes(data[i + 46:i + 46 + n]).endswith(suffix.encode()): struct.pack_into('<II', data, i + 20, size, size)
        i = data.find(b'PK\x01\x02', i + 4)
    path.write_bytes(bytes(data))
    return path

def nested(depth):
    "Pickle opcodes that push one list nested `depth` deep: [[[...]]]."
    return b']' * depth + b'a' * (depth - 1)

MARK = 'DEEP-MARK'   # a field value, replaced in the pickle by a nested list

HUGE = 10**9   # elements of a stride-0 view: 4 GB once made contiguous, 4 bytes in the file

@pytest.fixture(scope='module')
def hostile(rec, tmp_path_factory):
    "The hostile model files, by name, in one folder."
    d = tmp_path_factory.mktemp('hostile-models')
    w = rec['state_dict']['weight']
    files = {
        'complex-nan': with_weight(rec, torch.complex(w, torch.full_like(w, math.nan))),
        'huge-weights': with_weight(rec, torch.where(torch.arange(w.numel()).view_as(w) % 2 == 0, 3e38, -3e38).float()),
        'stride-0-view': {**rec, 'state_dict': {**rec['state_dict'], 'weight': torch.zeros(1).expand(HUGE)}},  # sum: not computable
        'stride-0-right-shape': with_weight(rec, torch.full((1,), 0.01).expand(1, 784)),
        'int-key': resummed(rec, state_dict={**rec['state_dict'], 0: w}),
        'fp8': with_weight(rec, w.to(torch.float8_e4m3fn)),
        'meta': with_weight(rec, torch.empty(1, 784, device='meta')),
        'sparse': with_weight(rec, w.to_sparse()),
        'epochs-negative': {**rec, 'epochs': -5},
        'long-version': {**rec, 'mnist37_version': 'v' * 10**7}, 'deep': {**rec, 'classes': MARK},
    }
    for name, r in files.items(): torch.save(r, d/f'{name}.pt')
    deep = zip_records(d/'deep.pt')
    (pkl,) = [n for n in deep if n.endswith('/data.pkl')]
    marked = b'X' + struct.pack('<I', len(MARK)) + MARK.encode()
    assert deep[pkl].count(marked) == 1
    rezip(d/'deep.pt', {**deep, pkl: deep[pkl].replace(marked, nested(100_000))})
    good = zip_records(d/'epochs-negative.pt')   # any record: only the zip around it is changed
    rezip(d/'many-records.pt', {**good, **{f'{pkl.split("/")[0]}/extra/{i}': b'' for i in range(5000)}})
    declare(rezip(d/'declares-100MB.pt', zip_records(d/'complex-nan.pt')), '/data/0', 100 * 2**20)
    torch.jit.save(torch.jit.trace(build_model('linear'), torch.zeros(1, 784)), d/'torchscript.pt')
    return d


# ---------------------------------------------------------------- the command line on them

EVALS = {   # model file: words its one error line must hold (each also fails on today's main)
    'complex-nan': ['complex64', 'not float32'],
    'stride-0-right-shape': ['view', 'strides'],
    'int-key': ['named 0'],
    'fp8': ['float8_e4m3fn'], 'meta': ['meta tensor'], 'sparse': ['sparse_coo'],
    'epochs-negative': ["'epochs' field", 'from 1'],   # the other fields: in-process, below
    'long-version': ['fields take'],
    'deep': ["'classes' field", 'a list of 1 items'], 'many-records': ['5,00'],
    'declares-100MB': ['declare', "file's own"],
    'torchscript': ['is a TorchScript file', 'torch.jit.save'],
}

def run_main(*args):
    "`mnist37.cli.main(args)` in this process (no start-up to wait for), as a CompletedProcess like test_hostile's `run`."
    from mnist37.cli import main
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        import mnist37.fast   # noqa: F401  (fastai's import warns once per process; a command starts with it done)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err): code = main([str(a) for a in args])
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())

@pytest.fixture(scope='module')
def eval_runs(env, hostile, a3):
    "`eval` of each file of EVALS and `predict` of the two whose weights give non-finite outputs (in-process but one)."
    runs = {n: run_main('eval', hostile/f'{n}.pt') for n in EVALS}
    runs['predict-complex-nan'] = run_main('predict', hostile/'complex-nan.pt', a3)
    runs['predict-huge-weights'] = run_main('predict', hostile/'huge-weights.pt', a3, '--json')
    runs['eval-huge-weights'] = run_all(env, {0: ['eval', hostile/'huge-weights.pt', '--json']})[0]   # needs the data
    return runs

@pytest.mark.parametrize('name', EVALS)
def test_eval_refuses_hostile_model_file(eval_runs, hostile, name):
    "Each hostile file is refused by `eval` with one line naming the file and the cause: exit 1, never 'this is a bug'."
    line = fails(eval_runs[name], 1, str(hostile/f'{name}.pt'), *EVALS[name])
    assert len(line) < 400, f"the message is {len(line):,} characters: {line[:200]}..."   # described, not repr'd whole

def test_predict_refuses_complex_weights_with_nan(eval_runs):
    "Complex weights holding NaN (checksum right) predicted p=nan and exited 0; now refused before any answer."
    fails(eval_runs['predict-complex-nan'], 1, 'complex64')

@pytest.mark.parametrize('cmd', ['predict', 'eval'])
def test_huge_finite_weights_give_no_nan(eval_runs, cmd):
    "Finite weights of ±3e38 overflow the outputs: no NaN probability (which is not JSON), one line, exit 1."
    p = eval_runs[f'{cmd}-huge-weights']
    no_crash(p)
    assert 'NaN' not in p.stdout and 'nan' not in p.stdout, p.stdout
    fails(p, 1, 'not finite')

def run_capped(env, *args, data_bytes=3 * 2**30):
    "`mnist37 *args` with at most `data_bytes` of data memory (RLIMIT_DATA): what it needs beyond that, it does not get."
    cap = lambda: resource.setrlimit(resource.RLIMIT_DATA, (data_bytes, data_bytes))
    try: return subprocess.run([str(MNIST37), *map(str, args)], env=env, capture_output=True, text=True, timeout=TIMEOUT,
                               preexec_fn=cap)
    except subprocess.TimeoutExpired: return Hung(args, TIMEOUT)

def test_stride_0_view_is_refused_before_it_is_materialised(env, hostile):
    "A 2.5 KB file holding a stride-0 view of 10^9 floats took 8.9 GB and 25 s before it was refused: now its shape is."
    assert (hostile/'stride-0-view.pt').stat().st_size < 10_000
    fails(run_capped(env, 'eval', hostile/'stride-0-view.pt'), 1, 'shape (1000000000,)', 'not (1, 784)')


# ---------------------------------------------------------------- read_model, field by field, in-process

W = lambda rec: rec['state_dict']['weight']
FIELD_CASES = {   # name: (change of the record, words of the CLIError)
    'epochs -5': (lambda r: {**r, 'epochs': -5}, "'epochs' field should be a whole number from 1"),
    'epochs 0': (lambda r: {**r, 'epochs': 0}, "'epochs' field"),
    'epochs 2.5': (lambda r: {**r, 'epochs': 2.5}, "got 2.5"),
    'epochs 1e100': (lambda r: {**r, 'epochs': 10**100}, "a whole number of 333 bits"),
    'epochs True': (lambda r: {**r, 'epochs': True}, "'epochs' field should be a whole number from 1 to 1000000, got True"),
    'seed inf': (lambda r: {**r, 'seed': math.inf}, "'seed' field should be a whole number from 0 to 4294967295"),
    'seed -1': (lambda r: {**r, 'seed': -1}, "'seed' field"),
    'seed 2**32': (lambda r: {**r, 'seed': 2**32}, "'seed' field"),
    'accuracy nan': (lambda r: {**r, 'accuracy': math.nan}, "'accuracy' field should be a number from 0 to 1, got nan"),
    'accuracy 1.5': (lambda r: {**r, 'accuracy': 1.5}, "'accuracy' field"),
    'accuracy str': (lambda r: {**r, 'accuracy': '0.9'}, "'accuracy' field should be a number from 0 to 1, got '0.9'"),
    'format_version 2.0': (lambda r: {**r, 'format_version': 2.0}, "'format_version' field should be 2, got 2.0"),
    'format_version True': (lambda r: {**r, 'format_version': True}, "'format_version' field"),
    'version 1,000 chars': (lambda r: {**r, 'mnist37_version': 'v' * 1000}, "a string of 1,000 characters"),
    'version with ESC': (lambda r: {**r, 'mnist37_version': '1.0\x1b[31m'}, "'mnist37_version' field"),
    'an unknown field': (lambda r: {**r, 'note': 'hello'}, "a field this mnist37 does not know: 'note'"),
    'int weights': (lambda r: with_weight(r, W(r).int()), "'weight' holds int32, not float32"),
    'bool weights': (lambda r: with_weight(r, W(r) > 0), "'weight' holds bool"),
    'float64 weights': (lambda r: with_weight(r, W(r).double()), "'weight' holds float64"),
    'inf weight': (lambda r: with_weight(r, W(r).clone().fill_(math.inf)), "not finite"),
    'strided view': (lambda r: with_weight(r, torch.zeros(784, 2)[:, 0].unsqueeze(0)), "is a view (strides (1568, 2))"),
    'shared storage': (lambda r: with_weight(r, torch.zeros(2000)[:784].view(1, 784)), "is a view"),
    'classes of tensors': (lambda r: {**r, 'classes': [torch.zeros(2), torch.zeros(2)]}, "'classes' field should be ['3', '7'], got a list of 2 items"),
    'preprocessing with a tensor': (lambda r: {**r, 'preprocessing': {**r['preprocessing'], 'size': torch.tensor([28, 28])}},
                                    "got a dict of 5 items"),
}

@pytest.mark.as_user
@pytest.mark.parametrize('case', FIELD_CASES)
def test_read_model_checks_every_field(rec, tmp_path, case):
    "Each field's type and range is checked on read, with a short description of what was found; the checksum is right."
    change, words = FIELD_CASES[case]
    torch.save(change(rec), tmp_path/'m.pt')
    with pytest.raises(CLIError) as e: read_model(tmp_path/'m.pt')
    assert words in str(e.value) and len(str(e.value)) < 400, str(e.value)

@pytest.mark.as_user
def test_read_model_of_a_name_with_NUL():
    "`read_model('a\\0b')` says the name is not valid, not that a file is corrupt."
    with pytest.raises(CLIError, match='not a valid file name'): read_model('a\0b')


# ---------------------------------------------------------------- the library's functions check their arguments

def test_predict_images_takes_one_path(rec, a3):
    "One path, as a str or a Path, is one image (not the characters of its name)."
    m = build_model('linear').eval()
    m.load_state_dict(rec['state_dict'])
    for one in (str(a3), a3):
        res = predict_images(m, rec, one)
        assert [x['path'] for x in res] == [str(a3)] and res[0]['digit'] in (3, 7), res


def test_class_probabilities_refuses_non_finite_outputs(rec):
    "Outputs that overflow give a CLIError, never a NaN probability."
    m = build_model('linear').eval()
    with torch.no_grad(): m.weight.fill_(3e38)
    with pytest.raises(CLIError, match='not finite'): class_probabilities(m, model_input(np.ones((2, 28, 28)), rec))

@pytest.mark.parametrize('record', [None, {'format': 'mnist37-model'}, 'a string'])
def test_save_model_refuses_what_is_not_a_model_record(rec, tmp_path, record):
    "`save_model` writes only a whole, checked model record: anything else is refused and nothing is written."
    with pytest.raises((TypeError, ValueError)): save_model(record, tmp_path/'m.pt')
    assert list(tmp_path.iterdir()) == []

@pytest.mark.as_user
def test_save_model_refuses_a_record_read_model_would_refuse(rec, tmp_path):
    with pytest.raises(ValueError, match="'seed' field"): save_model({**rec, 'seed': -1}, tmp_path/'m.pt')
    with pytest.raises(ValueError, match='not finite'): save_model(with_weight(rec, W(rec).clone().fill_(math.nan)), tmp_path/'m.pt')
    assert list(tmp_path.iterdir()) == []

ARG_CASES = [dict(accuracy=math.nan), dict(accuracy=2.0), dict(seed=-1), dict(seed=2**32), dict(seed=1.5), dict(seed=math.inf),
             dict(epochs=0), dict(epochs=2.5), dict(kind='cnn'), dict(dataset='fashion')]

@pytest.mark.parametrize('bad', ARG_CASES, ids=str)
def test_model_record_checks_its_arguments(bad):
    "`model_record` refuses, with the checks `read_model` makes of the same fields, what a model file must not hold."
    args = dict(kind='linear', accuracy=0.9, seed=42, epochs=3) | bad
    with pytest.raises(ValueError, match=f"model_record: {next(iter(bad))} should be"): model_record(build_model('linear'), **args)

def test_model_record_refuses_a_model_that_is_not_one():
    with pytest.raises(TypeError, match='nn.Module'): model_record(None, 'linear', 0.9, 42, 3)
