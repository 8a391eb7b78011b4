"mnist37.fast: the fast training loop and its schedule, the bf16 fallback, get_preds, resnet18 on a tiny subset, the fast ladder's arguments."
import warnings; warnings.filterwarnings('ignore', message='.*torch.jit.script.*deprecated')
from contextlib import nullcontext
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import mnist37.fast as fast
from mnist37.fast import fit_fast, evaluate, get_preds, one_cycle, cpu_autocast, bf16_supported, fast_resnet18, bytes_to_input
from mnist37.recipes import fit_resnet18_fast, beside_book, run_fast_ladder
from mnist37.learner import BasicOptim
from mnist37.ladder import ladder_row

def toy(n=600, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=g); y = (x[:, :1] + 0.5*x[:, 1:2] > 0).float()
    return x[:400], y[:400], x[400:], y[400:]

def train(seed, epochs=6, **kw):
    torch.manual_seed(1); m = nn.Linear(5, 1)
    return fit_fast(m, *toy(), epochs=epochs, lr=1., bs=32, seed=seed, progress=False, **kw), m

def test_fit_fast_learns_and_records_every_epoch():
    hist, _ = train(seed=3)
    assert [h['epoch'] for h in hist] == list(range(1, 7))   # numbered from 1, as the progress bar counts
    assert set(hist[0]) == {'epoch', 'train_loss', 'valid_loss', 'batch_accuracy', 'seconds'}
    assert hist[-1]['batch_accuracy'] > 0.95 and hist[-1]['valid_loss'] < hist[0]['valid_loss']
    assert all(a['seconds'] <= b['seconds'] for a, b in zip(hist, hist[1:]))

def test_fit_fast_same_seed_same_result():
    (a, m1), (b, m2) = train(seed=3), train(seed=3)
    assert [h['valid_loss'] for h in a] == [h['valid_loss'] for h in b] and torch.equal(m1.weight, m2.weight)
    (_, m3) = train(seed=4)
    assert not torch.equal(m1.weight, m3.weight)

def test_fit_fast_matches_basic_optim():
    "Plain torch SGD and the chapter's BasicOptim are the same optimizer: same seed, same weights."
    (_, m1), (_, m2) = train(seed=3), train(seed=3, opt_func=BasicOptim)
    assert torch.allclose(m1.weight, m2.weight, atol=1e-6)

def test_fit_fast_zero_epochs_and_progress_bar():
    assert train(seed=0, epochs=0)[0] == []
    torch.manual_seed(1)
    assert len(fit_fast(nn.Linear(5, 1), *toy(), epochs=2, lr=1., bs=64, progress=True)) == 2

def test_fit_fast_partial_last_batch_is_weighted():
    "400 rows in batches of 300: the train loss is the mean over rows, not over batches."
    torch.manual_seed(1); m = nn.Linear(5, 1)
    hist = fit_fast(m, *toy(), epochs=1, lr=1e-9, bs=300, seed=0, progress=False)   # lr ~0: the model barely moves
    from mnist37.loss import mnist_loss
    x, y, _, _ = toy()
    with torch.no_grad(): assert hist[0]['train_loss'] == pytest.approx(float(mnist_loss(m(x), y)), abs=1e-5)

def test_fit_fast_tfm_feeds_the_model():
    x, y, vx, vy = toy()
    seen = []
    def tfm(xb): seen.append(xb.dtype); return xb.float() / 100
    torch.manual_seed(1)
    fit_fast(nn.Linear(5, 1), (x*100).round().short(), y, (vx*100).round().short(), vy, 1, 0.1, bs=200, tfm=tfm, progress=False)
    assert seen and set(seen) == {torch.int16}

def test_evaluate_and_get_preds_are_chunk_independent():
    x, y, vx, vy = toy()
    m = nn.Linear(5, 1)
    assert evaluate(m, vx, vy, bs=7) == pytest.approx(evaluate(m, vx, vy, bs=4096))
    assert torch.allclose(get_preds(m, vx, bs=7), get_preds(m, vx))
    assert m.training  # both restore the mode
    assert get_preds(m.eval(), vx).shape == (200, 1) and not m.training

def test_one_cycle_is_fastais_schedule():
    m = nn.Linear(2, 1)
    opt = torch.optim.AdamW(m.parameters(), lr=0.1)
    sched = one_cycle(opt, 0.1, 100)
    lrs, betas = [], []
    for _ in range(100):
        lrs.append(opt.param_groups[0]['lr']); betas.append(opt.param_groups[0]['betas'][0]); opt.step(); sched.step()
    assert lrs[0] == pytest.approx(0.1/25) and max(lrs) == pytest.approx(0.1, rel=1e-3)
    assert lrs.index(max(lrs)) in (24, 25) and lrs[-1] < 0.1/1e4
    assert betas[0] == pytest.approx(0.95) and min(betas) == pytest.approx(0.85, abs=1e-3)
    sgd = torch.optim.SGD(m.parameters(), lr=0.1)
    one_cycle(sgd, 0.1, 10)
    assert sgd.param_groups[0]['momentum'] == 0   # plain SGD is left plain

@pytest.mark.parametrize('kw, err, msg', [
    (dict(epochs=1.5), TypeError, 'epochs must be a whole number'),
    (dict(epochs=True), TypeError, 'epochs must be a whole number'),
    (dict(epochs=-1), ValueError, 'epochs must be >= 0'),
    (dict(lr=0), ValueError, 'lr must be positive'),
    (dict(lr=float('nan')), ValueError, 'lr must be positive'),
    (dict(lr=float('inf')), ValueError, 'lr must be positive and finite, got inf'),
    (dict(seed=2**64), ValueError, 'fit_fast: seed must be <= 4294967295'),
    (dict(seed=1.5), TypeError, 'fit_fast: seed must be a whole number'),
    (dict(seed=-1), ValueError, 'fit_fast: seed must be >= 0'),
    (dict(lr='0.1'), TypeError, 'lr must be a number'),
    (dict(bs=0), ValueError, 'bs must be >= 1'),
    (dict(opt_func=BasicOptim, sched=True), TypeError, 'needs a PyTorch optimizer'),
])
def test_fit_fast_bad_arguments(kw, err, msg):
    args = dict(epochs=1, lr=0.1, bs=32) | kw
    with pytest.raises(err, match=msg): fit_fast(nn.Linear(5, 1), *toy(), **args, progress=False)

def test_fit_fast_bad_data():
    x, y, vx, vy = toy()
    with pytest.raises(ValueError, match='train_x has 400 rows but train_y has 10'): fit_fast(nn.Linear(5, 1), x, y[:10], vx, vy, 1, 0.1)
    with pytest.raises(TypeError, match='needs tensors'): fit_fast(nn.Linear(5, 1), list(x), y, vx, vy, 1, 0.1)
    with pytest.raises(ValueError, match='the valid set is empty'): fit_fast(nn.Linear(5, 1), x, y, vx[:0], vy[:0], 1, 0.1)
    with pytest.raises(TypeError, match='needs an nn.Module'): fit_fast(lambda t: t, x, y, vx, vy, 1, 0.1)
    frozen = nn.Linear(5, 1).requires_grad_(False)
    with pytest.raises(ValueError, match='no trainable parameters'): fit_fast(frozen, x, y, vx, vy, 1, 0.1)

def test_bf16_fallback_when_unsupported(monkeypatch):
    monkeypatch.setattr(fast, 'bf16_supported', lambda: False)
    assert isinstance(cpu_autocast(), nullcontext)

def test_bf16_fallback_when_autocast_fails(monkeypatch):
    def broken(*a, **k): raise RuntimeError('no bf16 here')
    monkeypatch.setattr(torch, 'autocast', broken)
    with pytest.warns(UserWarning, match='training in fp32'): ctx = cpu_autocast(True)
    assert isinstance(ctx, nullcontext)

# Where bf16_supported asks the CPU. If it comes to ask torch.cpu._is_avx512_bf16_supported() /
# torch.cpu._is_amx_tile_supported() instead, list those here: (torch.cpu, '_is_avx512_bf16_supported'), ...
BF16_PROBES = [(torch.cpu, '_is_avx512_bf16_supported'), (torch.cpu, '_is_amx_tile_supported')]

@pytest.fixture
def fake_cpu(monkeypatch):
    "`fake_cpu(answer)` makes every probe in BF16_PROBES return `answer` (or raise it, if it is an exception instance); returns the list of probes called."
    def fake(answer):
        calls = []
        for owner, name in BF16_PROBES:
            def probe(*a, _name=name, **k):
                calls.append(_name)
                if isinstance(answer, BaseException): raise answer
                return answer
            monkeypatch.setattr(owner, name, probe)
        return calls
    return fake

@pytest.mark.parametrize('error', [AttributeError("no such op"), RuntimeError("mkldnn is not built")])
def test_bf16_supported_is_false_when_the_probe_fails(fake_cpu, error):
    calls = fake_cpu(error)
    assert bf16_supported() is False
    assert calls, "bf16_supported never called the faked probe: retarget BF16_PROBES"

@pytest.mark.parametrize('answer', [True, False])
def test_bf16_supported_reports_the_cpus_answer(fake_cpu, answer):
    calls = fake_cpu(answer)
    assert bf16_supported() is answer
    assert calls, "bf16_supported never called the faked probe: retarget BF16_PROBES"

def test_cpu_autocast_contexts(fake_cpu):
    assert type(cpu_autocast(False)) is nullcontext
    assert isinstance(cpu_autocast(True), torch.autocast)
    fake_cpu(False); assert type(cpu_autocast()) is nullcontext          # the default asks bf16_supported()
    fake_cpu(True);  assert isinstance(cpu_autocast(), torch.autocast)

def test_bytes_to_input():
    xb = torch.tensor([[[[0, 255], [51, 102]]]], dtype=torch.uint8)
    out = bytes_to_input(xb, channels_last=False)
    assert out.dtype == torch.float32 and torch.allclose(out, torch.tensor([[[[0., 1.], [0.2, 0.4]]]]))
    assert bytes_to_input(xb.expand(2, 3, 2, 2)).is_contiguous(memory_format=torch.channels_last)

def test_resnet18_fast_path_runs_on_a_tiny_subset():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (48, 1, 28, 28), dtype=torch.uint8, generator=g); y = torch.arange(48) % 2
    model, acc, secs = fit_resnet18_fast(data=(x[:32], y[:32], x[32:], y[32:]), bs=16, progress=False, bf16=False)
    assert 0 <= acc <= 1 and secs > 0
    assert model(bytes_to_input(x[:3]).to(next(model.parameters()).device)).shape == (3, 2)   # on the GPU when there is one
    for kw, msg in ((dict(bs=0), 'bs must be >= 1'), (dict(lr=-1.), 'lr must be positive'), (dict(epochs=0.5), 'epochs must be a whole'),
                    (dict(epochs=0), 'fit_resnet18_fast: epochs must be >= 1'), (dict(seed=-1), 'seed must be >= 0')):
        with pytest.raises((ValueError, TypeError), match=msg): fit_resnet18_fast(data=(x, y, x, y), progress=False, **kw)

def test_fast_resnet18_shapes():
    assert fast_resnet18(n_in=1, n_out=10, channels_last=False)(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    with pytest.raises(ValueError, match='n_out must be >= 1'): fast_resnet18(n_out=0)

def test_beside_book():
    r = beside_book(ladder_row('mlp', 0.98, 2.0), ladder_row('mlp', 0.981, 6.0))
    assert r['speedup'] == 3.0 and r['book_accuracy'] == 0.981 and r['book_seconds'] == 6.0
    assert beside_book(ladder_row('mlp', 0.98, 0.0), ladder_row('mlp', 0.981, 6.0))['speedup'] is None

@pytest.mark.parametrize('kw, err, msg', [
    (dict(models='cnn'), ValueError, r"unknown model 'cnn' for the sample dataset; choose from baseline"),
    (dict(models=()), ValueError, "unknown model ''"),
    (dict(models='linear', epochs=0), ValueError, 'epochs must be >= 1'),
    (dict(models='linear', epochs=2.5), TypeError, 'epochs must be a whole number'),
    (dict(models='linear', seed=2**64), ValueError, 'seed must be <= 4294967295'),
    (dict(models='linear', seed=1.5), TypeError, 'seed must be a whole number'),
])
def test_run_fast_ladder_bad_arguments(kw, err, msg):
    with pytest.raises(err, match=msg): run_fast_ladder(progress=False, **kw)


@pytest.mark.parametrize('avx512_bf16, amx, native', [(False, False, False), (True, False, True), (False, True, True), (True, True, True)])
def test_bf16_is_native_only_with_avx512_bf16_or_amx(monkeypatch, avx512_bf16, amx, native):
    "An AVX-512 CPU without either (oneDNN says bf16 'works' there, emulated at half fp32's speed) trains in fp32."
    monkeypatch.setattr(torch.ops.mkldnn, '_is_mkldnn_bf16_supported', lambda: True, raising=False)
    monkeypatch.setattr(torch.cpu, '_is_avx512_bf16_supported', lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, '_is_amx_tile_supported', lambda: amx)
    assert bf16_supported() is native
    assert isinstance(cpu_autocast(), torch.autocast) is native

def test_pick_device(monkeypatch):
    from mnist37.fast import pick_device
    assert pick_device('cpu') == torch.device('cpu')
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(torch.backends.mps, 'is_available', lambda: False)
    assert pick_device('auto') == torch.device('cpu')                 # no GPU: fastai's default_device is the CPU
    with pytest.raises(ValueError, match="device 'cuda' is not available here"): pick_device('cuda')
    with pytest.raises(ValueError, match="device 'mps' is not available here"): pick_device('mps')
    with pytest.raises(ValueError, match="unknown device 'tpu'"): pick_device('tpu')

def test_fit_fast_puts_model_and_data_on_the_device():
    "On the CPU the plumbing is the same as on a GPU: the model moves, the data moves once, the outputs come back."
    seen = []
    class Spy(nn.Linear):
        def forward(self, x): seen.append(x.device); return super().forward(x)
    m = Spy(5, 1)
    fit_fast(m, *toy(), epochs=1, lr=1., bs=64, progress=False, device=torch.device('cpu'))
    assert set(seen) == {torch.device('cpu')} and next(m.parameters()).device == torch.device('cpu')
    x = torch.randn(10, 5)
    assert get_preds(m, x).device == x.device

def test_autocast_for_the_cpu_keeps_no_scaler():
    from mnist37.fast import autocast_for
    ctx, scaler = autocast_for('cpu', bf16=False)
    assert type(ctx) is nullcontext and scaler is None
