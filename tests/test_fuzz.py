"""Property-based fuzzing of the two readers of untrusted files: `mnist37.images.prepare_image` (a user's PNG or JPEG)
and `mnist37.modelfile.read_model` / `load_model` (a model file). Random bytes, and real files with bytes flipped,
set, inserted, deleted, duplicated or cut off (PNG also chunk by chunk, with valid CRCs, so that the decoder sees
the damage), are written to a tmp file and read. The property: each call returns normally (an image: a (28, 28)
float32 array in [0, 1]; a model: an nn.Module and its record) or raises `CLIError`; any other exception is a bug.
Each call must finish within 5 s (Hypothesis' deadline), and a watchdog turns a hang into a failure.

Runs are reproducible by default (derandomized, no example database, no shrinking so a failure is reported
at once); set MNIST37_FUZZ_RANDOM=1 for fresh random examples and MNIST37_FUZZ_SHRINK=1 to shrink a failure."""
import contextlib, io, os, signal, struct, zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings, strategies as st
from PIL import Image

from mnist37.checks import CLIError
from mnist37.images import prepare_image
from mnist37.modelfile import load_model, model_record, read_model, save_model

HANG_S = 30     # the watchdog: far beyond the 5 s deadline, for a call that never returns at all


def fuzz(n):
    "Hypothesis settings for `n` examples (see the module's docstring)."
    phases = [Phase.explicit, Phase.reuse, Phase.generate] + ([Phase.shrink] if os.environ.get('MNIST37_FUZZ_SHRINK') else [])
    return settings(max_examples=n, deadline=5000, database=None, derandomize=not os.environ.get('MNIST37_FUZZ_RANDOM'),
                    phases=phases, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


class Hang(BaseException):
    "Raised by the watchdog; a BaseException, so that no `except Exception` in the library can swallow it."

@contextlib.contextmanager
def watchdog(seconds=HANG_S):
    def alarm(signum, frame): raise Hang(f"no answer within {seconds} s")
    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try: yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


# ---------------------------------------------------------------- mutations

POS = st.integers(0, 2**32)                 # a position, taken modulo the length of the data
BYTE = st.sampled_from([0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff]) | st.integers(0, 255)
OP = st.one_of(st.tuples(st.just('flip'), POS, st.integers(1, 255)),
               st.tuples(st.just('set'), POS, BYTE),
               st.tuples(st.just('truncate'), POS),
               st.tuples(st.just('insert'), POS, st.binary(min_size=1, max_size=64)),
               st.tuples(st.just('delete'), POS, st.integers(1, 64)),
               st.tuples(st.just('duplicate'), POS, st.integers(1, 1024), POS))
OPS = st.lists(OP, min_size=1, max_size=8)

def mutate(data, ops):
    "`data` after the byte operations `ops` (see OP), applied in turn."
    b = bytearray(data)
    for op, *a in ops:
        n = len(b)
        if op == 'insert': i = a[0] % (n + 1); b[i:i] = a[1]
        elif op == 'truncate': del b[a[0] % (n + 1):]
        elif n == 0: continue
        elif op == 'flip': b[a[0] % n] ^= a[1]
        elif op == 'set': b[a[0] % n] = a[1]
        elif op == 'delete': i = a[0] % n; del b[i:i + a[1]]
        elif op == 'duplicate':
            i = a[0] % n; piece = b[i:i + a[1]]; j = a[2] % (n + 1); b[j:j] = piece
    return bytes(b)


def png_chunks(data):
    "The (type, body) chunks of the PNG `data` (a good one)."
    i, out = 8, []
    while i + 8 <= len(data):
        n, = struct.unpack('>I', data[i:i+4])
        out.append((data[i+4:i+8], data[i+8:i+8+n]))
        i += 12 + n
    return out

def png_from_chunks(chunks):
    "A PNG of `chunks`, each with its right CRC."
    return b'\x89PNG\r\n\x1a\n' + b''.join(struct.pack('>I', len(b)) + t + b + struct.pack('>I', zlib.crc32(t + b) & 0xffffffff)
                                           for t, b in chunks)

KINDS = [b'IHDR', b'PLTE', b'IDAT', b'IEND', b'tRNS', b'gAMA', b'sBIT', b'iCCP', b'tEXt', b'zTXt', b'iTXt', b'eXIf',
         b'pHYs', b'acTL', b'fcTL', b'fdAT', b'bKGD', b'cHRM', b'sRGB']
DIM = st.sampled_from([0, 1, 2, 27, 28, 29, 255, 1000, 6000, 2**16, 2**31 - 1, 2**32 - 1])
IHDR = st.tuples(DIM, DIM, st.sampled_from([0, 1, 2, 4, 8, 16, 3, 32]), st.sampled_from([0, 2, 3, 4, 6, 1, 5, 7]),
                 st.sampled_from([0, 1]), st.sampled_from([0, 1]), st.sampled_from([0, 1, 2]))
CHUNK_OP = st.one_of(st.tuples(st.just('duplicate'), POS, POS),
                     st.tuples(st.just('drop'), POS),
                     st.tuples(st.just('swap'), POS, POS),
                     st.tuples(st.just('add'), POS, st.sampled_from(KINDS), st.binary(max_size=256)),
                     st.tuples(st.just('body'), POS, OPS),
                     st.tuples(st.just('ihdr'), IHDR),
                     st.tuples(st.just('recompress'), st.binary(max_size=4096)))   # a new IDAT stream of any bytes

def mutate_chunks(data, ops):
    "The PNG `data` after the chunk operations `ops` (see CHUNK_OP), rebuilt with right CRCs."
    cs = png_chunks(data)
    for op, *a in ops:
        n = len(cs)
        if op == 'add': i = a[0] % (n + 1); cs.insert(i, (a[1], a[2]))
        elif op == 'ihdr': cs = [(b'IHDR', struct.pack('>IIBBBBB', *a[0]))] + [c for c in cs if c[0] != b'IHDR']
        elif op == 'recompress':
            cs = [c for c in cs if c[0] != b'IDAT']; cs.insert(min(1, len(cs)), (b'IDAT', zlib.compress(a[0])))
        elif n == 0: continue
        elif op == 'duplicate': cs.insert(a[1] % (n + 1), cs[a[0] % n])
        elif op == 'drop': del cs[a[0] % n]
        elif op == 'swap': i, j = a[0] % n, a[1] % n; cs[i], cs[j] = cs[j], cs[i]
        elif op == 'body': i = a[0] % n; cs[i] = (cs[i][0], mutate(cs[i][1], a[1]))
    return png_from_chunks(cs)


# ---------------------------------------------------------------- images

@pytest.fixture(scope='module')
def digit_png(sample_root):
    "A real MNIST digit: the first validation 3 of the sample, as the bytes of its 28x28 grey PNG."
    return sorted((sample_root/'valid'/'3').glob('*.png'))[0].read_bytes()

@pytest.fixture(scope='module')
def jpegs(digit_png):
    "Real JPEGs made with PIL from the digit: a dark RGB 3 on white with an EXIF orientation, and a progressive grey one."
    three = np.asarray(Image.open(io.BytesIO(digit_png)))
    out = []
    exif = Image.Exif(); exif[0x0112] = 6                               # rotated: exif_transpose has work to do
    for kw, im in [(dict(quality=90, exif=exif.tobytes()), Image.fromarray(255 - three).resize((64, 64)).convert('RGB')),
                   (dict(quality=75, progressive=True), Image.fromarray(three).resize((48, 48)))]:
        buf = io.BytesIO(); im.save(buf, 'JPEG', **kw); out.append(buf.getvalue())
    return out

def check_image(path):
    "`prepare_image(path)` returns a (28, 28) float32 digit in [0, 1] or raises CLIError; nothing else."
    with watchdog():
        try: a = prepare_image(path)
        except CLIError: return
    assert isinstance(a, np.ndarray) and a.shape == (28, 28) and a.dtype == np.float32, (type(a), getattr(a, 'shape', None))
    assert np.isfinite(a).all() and a.min() >= 0 and a.max() <= 1

def test_real_images_are_read(tmp_path, digit_png, jpegs):
    "The unmutated files the fuzzers start from are good digits (so the mutations start from something that works)."
    for i, data in enumerate([digit_png, *jpegs]):
        (tmp_path/f'{i}.img').write_bytes(data)
        assert prepare_image(tmp_path/f'{i}.img').shape == (28, 28)

MAGIC = st.sampled_from([b'', b'\x89PNG\r\n\x1a\n', b'\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR', b'\xff\xd8\xff', b'\xff\xd8\xff\xe1'])

@fuzz(100)
@given(head=MAGIC, body=st.binary(max_size=2048))
def test_random_bytes_as_image(tmp_path, head, body):
    "Random bytes, bare or behind a PNG or JPEG signature."
    (tmp_path/'x.png').write_bytes(head + body)
    check_image(tmp_path/'x.png')

@fuzz(200)
@given(ops=OPS)
def test_mutated_png(tmp_path, digit_png, ops):
    "The digit's PNG with bytes flipped, set, inserted, deleted, duplicated or cut off."
    (tmp_path/'x.png').write_bytes(mutate(digit_png, ops))
    check_image(tmp_path/'x.png')

@fuzz(200)
@given(ops=st.lists(CHUNK_OP, min_size=1, max_size=5))
def test_png_chunks_mutated(tmp_path, digit_png, ops):
    "The digit's PNG with chunks duplicated, dropped, swapped, added or changed (IHDR's fields too), CRCs kept right."
    (tmp_path/'x.png').write_bytes(mutate_chunks(digit_png, ops))
    check_image(tmp_path/'x.png')

@fuzz(200)
@given(which=st.integers(0, 1), ops=OPS)
def test_mutated_jpeg(tmp_path, jpegs, which, ops):
    "A real JPEG (with EXIF, or progressive) with bytes flipped, set, inserted, deleted, duplicated or cut off."
    (tmp_path/'x.jpg').write_bytes(mutate(jpegs[which], ops))
    check_image(tmp_path/'x.jpg')


# ---------------------------------------------------------------- model files

@pytest.fixture(scope='module')
def good_record():
    "The record of an untrained linear model, as `train` would save it."
    from mnist37.recipes import build_model
    return model_record(build_model('linear'), 'linear', 0.5, 42, 1)

@pytest.fixture(scope='module')
def model_bytes(tmp_path_factory, good_record):
    "The bytes of the model file `save_model` writes for `good_record`."
    fn = save_model(good_record, tmp_path_factory.mktemp('fuzz-model')/'m.pt')
    load_model(fn)                                    # the unmutated file is good (and torch is imported and warm)
    return fn.read_bytes()

def check_model(path):
    "`read_model` and `load_model` of `path` return normally or raise CLIError, and agree on which."
    with watchdog():
        try: read_model(path)
        except CLIError: ok = False
        else: ok = True
        try: model, rec = load_model(path)
        except CLIError: return
    import torch
    assert ok, "read_model refused the file but load_model took it"
    assert isinstance(model, torch.nn.Module) and isinstance(rec, dict)

@fuzz(50)
@given(head=st.sampled_from([b'', b'PK\x03\x04', b'PK\x03\x04\x00\x00\x08\x00']), body=st.binary(max_size=2048))
def test_random_bytes_as_model_file(tmp_path, head, body):
    "Random bytes, bare or behind a zip signature."
    (tmp_path/'m.pt').write_bytes(head + body)
    check_model(tmp_path/'m.pt')

@fuzz(100)
@given(ops=OPS)
def test_mutated_model_file(tmp_path, model_bytes, ops):
    "A real model file with bytes flipped, set, inserted, deleted, duplicated or cut off."
    (tmp_path/'m.pt').write_bytes(mutate(model_bytes, ops))
    check_model(tmp_path/'m.pt')


def _tensors():
    import torch
    dtypes = [torch.float32, torch.float64, torch.float16, torch.int64, torch.uint8, torch.bool, torch.complex64]
    shapes = st.sampled_from([(), (0,), (1,), (1, 784), (784, 1), (784,), (2, 784), (1, 1, 28, 28), (10, 784)])
    fill = st.sampled_from([0.0, 1.0, -1.0, float('nan'), float('inf'), 1e38])
    return st.builds(lambda s, d, v: torch.full(s, v).to(d), shapes, st.sampled_from(dtypes), fill)

def _values():
    plain = st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats() | st.text(max_size=20)
    return st.recursive(plain | _tensors(), lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids, max_size=3),
                        max_leaves=6)

FIELD_OP = st.tuples(st.sampled_from(['delete', 'replace']),
                     st.sampled_from(['format', 'format_version', 'mnist37_version', 'kind', 'dataset', 'classes',
                                      'preprocessing', 'state_dict', 'accuracy', 'seed', 'epochs', 'weights_sha256',
                                      'state_dict.weight', 'state_dict.bias', 'state_dict.extra']),
                     st.deferred(_values))

@fuzz(100)
@given(ops=st.lists(FIELD_OP, min_size=1, max_size=3))
def test_mutated_model_record(tmp_path, good_record, ops):
    "A real record with fields deleted or replaced by other values (tensors of other shapes and dtypes too), saved again."
    import torch
    rec = {**good_record, 'state_dict': dict(good_record['state_dict'])}
    for op, key, value in ops:
        d, k = (rec['state_dict'], key.split('.')[1]) if key.startswith('state_dict.') and isinstance(rec.get('state_dict'), dict) \
            else (rec, key)
        if op == 'delete': d.pop(k, None)
        else: d[k] = value
    torch.save(rec, tmp_path/'m.pt')
    check_model(tmp_path/'m.pt')
