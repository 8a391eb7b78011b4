"""Tests of the chapter's functions (`mnist37.baseline`, `quadratic`, `loss`, `training`, `learner`, `models`):
edge cases (one image, an empty batch), wrong shapes that must fail with a clear message, and properties checked
by hypothesis over many small synthetic tensors. The notebooks test the numbers their prose quotes; this file tests
what a notebook tests poorly. Everything is synthetic and small, except one check on real images (skipped without
the data).


"""
import math

import pytest
import torch
from torch import nn
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from mnist37.baseline import is_3, mnist_distance, pixel_baseline, rmse_distance
from mnist37.quadratic import apply_step, quadratic, rmse
from mnist37.loss import init_params, linear1, mnist_loss
from mnist37.training import batch_accuracy, calc_grad, validate_epoch
from mnist37.learner import BasicOptim, mnist_dls, train_epoch, train_model

# Modest budgets keep the whole file fast; `sandbox` (conftest) is autouse and harmless to share between examples.
prop = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
few = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

seeds = st.integers(0, 2**31 - 1)
finite32 = st.floats(allow_nan=False, allow_infinity=False, width=32)
moderate32 = st.floats(-1e3, 1e3, width=32)


# ---------------------------------------------------------------- helpers

def images(seed, *shape, scale=1.0):
    "Random float 'images' in [0, scale), reproducible from `seed` (hypothesis picks the seed, torch the pixels)."
    g = torch.Generator().manual_seed(seed)
    return torch.rand(*shape, generator=g) * scale

def message(excinfo):
    return str(excinfo.value)

@st.composite
def scores_and_targets(draw, elements=finite32, max_n=32):
    "Raw scores (n, 1) and 0/1 float targets (n, 1), as the chapter's linear model and labels have them."
    n = draw(st.integers(1, max_n))
    s = draw(st.lists(elements, min_size=n, max_size=n))
    t = draw(st.lists(st.sampled_from([0., 1.]), min_size=n, max_size=n))
    return torch.tensor(s).view(n, 1), torch.tensor(t).view(n, 1)

def separable(seed, n=96, margin=0.2):
    "A 2-d problem a line separates with a margin: x (m, 2), y (m, 1) with 1 on one side of the line."
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g)
    side = x[:, 0] + 0.5*x[:, 1]
    x = x[side.abs() > margin]
    return x, (x[:, :1] + 0.5*x[:, 1:] > 0).float()


# ================================================================= mnist37.baseline

def test_mnist_distance_of_one_image_is_a_0d_tensor():
    a, b = images(0, 28, 28), images(1, 28, 28)
    d = mnist_distance(a, b)
    assert d.shape == ()
    assert d.item() == pytest.approx((a - b).abs().mean().item())

def test_is_3_of_one_image_is_a_0d_bool():
    mean3, mean7 = torch.zeros(28, 28), torch.ones(28, 28)
    r = is_3(torch.full((28, 28), 0.1), mean3, mean7)
    assert r.shape == () and r.dtype == torch.bool and r.item() is True
    assert is_3(torch.full((28, 28), 0.9), mean3, mean7).item() is False

def test_empty_stack_gives_empty_distances_and_predictions():
    empty, mean = torch.zeros(0, 28, 28), torch.zeros(28, 28)
    assert mnist_distance(empty, mean).shape == (0,)
    assert rmse_distance(empty, mean).shape == (0,)
    r = is_3(empty, mean, torch.ones(28, 28))
    assert r.shape == (0,) and r.dtype == torch.bool

@pytest.mark.parametrize('f', [mnist_distance, rmse_distance])
@pytest.mark.parametrize('a_shape,b_shape', [((28, 28), (27, 28)), ((28, 28), (28, 27)), ((5, 28, 28), (28, 27)),
                                             ((784,), (28, 28)), ((28, 28), (784,)), ((784,), (784,))])
def test_distances_reject_images_of_different_shapes(f, a_shape, b_shape):
    with pytest.raises(ValueError) as e: f(torch.zeros(a_shape), torch.zeros(b_shape))
    msg = message(e)
    assert f.__name__ in msg and str(a_shape) in msg and str(b_shape) in msg
    assert 'same image shape' in msg and '(..., 28, 28)' in msg

def test_is_3_rejects_a_mean_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r'mnist_distance .*\(28, 28\) and \(27, 28\)'):
        is_3(torch.zeros(28, 28), torch.zeros(27, 28), torch.zeros(28, 28))

@prop
@given(seed=seeds, n=st.integers(1, 8), scale=st.sampled_from([1.0, 255.0, 1e-3]))
def test_mnist_distance_is_symmetric_zero_on_equal_and_nonnegative(seed, n, scale):
    a, b = images(seed, n, 28, 28, scale=scale), images(seed + 1, n, 28, 28, scale=scale)
    d = mnist_distance(a, b)
    assert d.shape == (n,)
    assert torch.equal(d, mnist_distance(b, a))
    assert (d >= 0).all()
    assert torch.equal(mnist_distance(a, a), torch.zeros(n))
    assert torch.equal(mnist_distance(a, a.clone()), torch.zeros(n))

@prop
@given(seed=seeds, n=st.integers(0, 10))
def test_mnist_distance_broadcasts_a_stack_against_one_image(seed, n):
    stack, one = images(seed, n, 28, 28), images(seed + 1, 28, 28)
    d = mnist_distance(stack, one)
    assert d.shape == (n,)
    looped = torch.stack([mnist_distance(x, one) for x in stack]) if n else torch.zeros(0)
    torch.testing.assert_close(d, looped, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(mnist_distance(one, stack), d, rtol=0, atol=0)  # either order

@few
@given(seed=seeds, n=st.integers(1, 4), m=st.integers(1, 4))
def test_mnist_distance_broadcasts_to_a_table(seed, n, m):
    "(n,1,28,28) against (m,28,28): every pair, an (n, m) table; the leading axes broadcast like any tensor op."
    a, b = images(seed, n, 1, 28, 28), images(seed + 1, m, 28, 28)
    table = mnist_distance(a, b)
    assert table.shape == (n, m)
    for i in range(n):
        for j in range(m):
            assert table[i, j].item() == pytest.approx(mnist_distance(a[i, 0], b[j]).item(), rel=1e-6, abs=1e-7)

@prop
@given(seed=seeds, n=st.integers(1, 6), scale=st.sampled_from([1.0, 255.0, 1e-3]))
def test_rmse_distance_is_at_least_the_mean_absolute_distance(seed, n, scale):
    a, b = images(seed, n, 28, 28, scale=scale), images(seed + 1, 28, 28, scale=scale)
    l1, l2 = mnist_distance(a, b), rmse_distance(a, b)
    assert (l2 >= l1 * (1 - 1e-5)).all()          # RMS >= mean |x| (equal when every difference is the same size)

def test_rmse_distance_equals_mnist_distance_when_every_pixel_differs_equally():
    a = torch.zeros(28, 28)
    assert mnist_distance(a, a + 0.25).item() == pytest.approx(0.25)
    assert rmse_distance(a, a + 0.25).item() == pytest.approx(0.25)
    one_pixel = a.clone(); one_pixel[0, 0] = 1.
    assert mnist_distance(one_pixel, a).item() == pytest.approx(1/784)
    assert rmse_distance(one_pixel, a).item() == pytest.approx(1/28)   # RMSE punishes one big difference more

@prop
@given(seed=seeds, n=st.integers(1, 10), use_rmse=st.booleans())
def test_is_3_agrees_with_comparing_the_two_distances(seed, n, use_rmse):
    x, mean3, mean7 = images(seed, n, 28, 28), images(seed + 1, 28, 28), images(seed + 2, 28, 28)
    dist = rmse_distance if use_rmse else mnist_distance
    r = is_3(x, mean3, mean7, dist) if use_rmse else is_3(x, mean3, mean7)
    assert r.dtype == torch.bool and r.shape == (n,)
    assert torch.equal(r, dist(x, mean3) < dist(x, mean7))
    for i in range(n): assert is_3(x[i], mean3, mean7, dist).item() == r[i].item()   # one image at a time agrees

def test_is_3_says_no_on_a_tie():
    mean = torch.full((28, 28), 0.5)
    assert not is_3(images(0, 3, 28, 28), mean, mean.clone()).any()

def test_pixel_baseline_accuracies():
    "Train means all-0 (3) and all-1 (7); of 4 valid 3s two look like a 7, all 3 valid 7s are right."
    t3, t7 = torch.zeros(5, 28, 28), torch.ones(6, 28, 28)
    v3 = torch.stack([torch.full((28, 28), v) for v in (0.1, 0.2, 0.8, 0.9)])
    v7 = torch.stack([torch.full((28, 28), v) for v in (0.6, 0.7, 1.0)])
    r = pixel_baseline(t3, t7, v3, v7)
    assert r == pytest.approx(dict(acc_3=0.5, acc_7=1.0, accuracy=0.75, accuracy_all=5/7))
    assert pixel_baseline(t3, t7, v3, v7, distance=rmse_distance) == pytest.approx(r)

def test_mnist_distance_on_byte_images_says_to_convert_them():
    a = torch.randint(0, 256, (3, 28, 28), dtype=torch.uint8)   # what load_digit_bytes returns
    with pytest.raises(TypeError, match=r'float'): mnist_distance(a, a[0])

@pytest.fixture(scope='module')
def valid_digits(tmp_path_factory, sample_tgz):
    "The sample's valid 3s and 7s as float stacks: only valid/ is extracted (2,038 files), which keeps this file fast."
    import tarfile
    from mnist37.data import load_digit, safe_members, _DATA_FILTER   # safe on every Python, filter or not
    dest = tmp_path_factory.mktemp('valid_only')
    with tarfile.open(sample_tgz) as tf:
        tf.extractall(dest, members=safe_members([m for m in tf.getmembers() if '/valid/' in m.name], sample_tgz), **_DATA_FILTER)
    root = dest/'mnist_sample'/'valid'
    return load_digit(root/'3', cache=False), load_digit(root/'7', cache=False)

def test_baseline_on_real_images(valid_digits):
    "One check on real digits: the mean of the valid 3s and of the valid 7s tells most of them apart."
    v3, v7 = valid_digits
    assert v3.shape == (1010, 28, 28) and v7.shape == (1028, 28, 28)
    mean3, mean7 = v3.mean(0), v7.mean(0)
    one = is_3(v3[0], mean3, mean7)
    assert one.shape == () and one.dtype == torch.bool
    assert mnist_distance(v3, mean3).shape == (len(v3),)
    assert is_3(v3, mean3, mean7).float().mean() > 0.85
    assert (~is_3(v7, mean3, mean7)).float().mean() > 0.85


# ================================================================= mnist37.quadratic

@prop
@given(a=moderate32, b=moderate32, c=moderate32, ts=st.lists(st.floats(-100, 100, width=32), min_size=1, max_size=20))
def test_quadratic_matches_the_formula(a, b, c, ts):
    t = torch.tensor(ts)
    got = quadratic(t, torch.tensor([a, b, c]))
    assert got.shape == t.shape and got.dtype == torch.float32
    want = [a*x**2 + b*x + c for x in ts]               # Python floats, i.e. float64
    size = [abs(a*x**2) + abs(b*x) + abs(c) for x in ts]
    for g, w, s in zip(got.tolist(), want, size): assert abs(g - w) <= 1e-6*s + 1e-6
    torch.testing.assert_close(quadratic(t, (a, b, c)), got)   # a tuple of numbers works as well as a tensor

@pytest.mark.parametrize('params', [torch.randn(2), torch.randn(4), [1., 2.]])
def test_quadratic_needs_three_params(params):
    with pytest.raises(ValueError) as e: quadratic(torch.arange(3.), params)
    assert 'three params' in message(e) and f'got {len(params)}' in message(e)

def test_rmse_known_value_and_zero():
    assert rmse(torch.tensor([1., 2., 3.]), torch.tensor([1., 2., 5.])).item() == pytest.approx(math.sqrt(4/3))
    x = torch.randn(7)
    assert rmse(x, x).item() == 0

@prop
@given(seed=seeds, n=st.integers(1, 30))
def test_rmse_is_symmetric_nonnegative_and_at_least_the_mean_absolute_error(seed, n):
    g = torch.Generator().manual_seed(seed)
    p, t = torch.randn(n, generator=g)*10, torch.randn(n, generator=g)*10
    r = rmse(p, t)
    assert r.shape == () and r >= 0
    assert r.item() == rmse(t, p).item()
    assert r.item() >= (p - t).abs().mean().item() * (1 - 1e-5)

@pytest.mark.parametrize('p_shape,t_shape', [((20, 1), (20,)), ((20,), (20, 1)), ((20,), (19,)), ((1, 20), (20, 1))])
def test_rmse_rejects_different_shapes(p_shape, t_shape):
    with pytest.raises(ValueError) as e: rmse(torch.zeros(p_shape), torch.zeros(t_shape))
    msg = message(e)
    assert 'same shape' in msg and str(p_shape) in msg and str(t_shape) in msg and 'reshape' in msg

@prop
@given(seed=seeds, lr=st.floats(1e-6, 1e-2), n=st.integers(2, 20))
def test_apply_step_moves_params_by_minus_lr_grad_and_zeroes_grad(seed, lr, n):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(float(n))
    targets = quadratic(t, torch.randn(3, generator=g)) + torch.randn(n, generator=g)
    params = torch.randn(3, generator=g).requires_grad_()
    # the expected step, computed independently on a copy
    ref = params.detach().clone().requires_grad_()
    ref_loss = rmse(quadratic(t, ref), targets); ref_loss.backward()
    before = params.detach().clone()
    loss = apply_step(params, t, targets, lr)
    assert isinstance(loss, float) and loss == ref_loss.item()             # the loss *before* the step
    torch.testing.assert_close(params.detach(), before - lr*ref.grad, rtol=1e-6, atol=1e-7)
    assert torch.equal(params.grad, torch.zeros(3))
    assert params.requires_grad and params.is_leaf                          # still trainable for the next step

def test_apply_step_lowers_the_loss_over_steps():
    torch.manual_seed(42)
    t = torch.arange(20.)
    targets = quadratic(t, torch.tensor([0.75, -1., 3.])) + torch.randn(20)*3
    params = torch.randn(3).requires_grad_()
    losses = [apply_step(params, t, targets, 1e-5) for _ in range(10)]
    assert all(b < a for a, b in zip(losses, losses[1:]))

def test_apply_step_needs_params_that_require_grad():
    with pytest.raises(ValueError, match=r'require gradients.*requires_grad_\(\)'):
        apply_step(torch.randn(3), torch.arange(5.), torch.zeros(5), 1e-3)

def test_apply_step_at_an_exact_fit_leaves_params_alone():
    t, true = torch.arange(20.), torch.tensor([0.75, -1., 3.])
    params = true.clone().requires_grad_()
    assert apply_step(params, t, quadratic(t, true), 1e-5) == 0
    assert torch.equal(params.detach(), true)


# ================================================================= mnist37.loss

def test_init_params_shape_grad_and_std():
    torch.manual_seed(0); w = init_params((784, 1))
    assert w.shape == (784, 1) and w.requires_grad and w.is_leaf and w.dtype == torch.float32
    torch.manual_seed(0); w2 = init_params((784, 1), std=2.)
    torch.testing.assert_close(w2.detach(), 2*w.detach())
    assert init_params(3, std=0.).detach().abs().sum() == 0
    assert init_params(1).shape == (1,)

@prop
@given(seed=seeds, n=st.integers(0, 16))
def test_linear1_is_one_score_per_image(seed, n):
    g = torch.Generator().manual_seed(seed)
    xb, w, b = torch.rand(n, 784, generator=g), torch.randn(784, 1, generator=g), torch.randn(1, generator=g)
    out = linear1(xb, w, b)
    assert out.shape == (n, 1)
    torch.testing.assert_close(out, xb@w + b)
    for i in range(n): torch.testing.assert_close(linear1(xb[i:i+1], w, b), out[i:i+1], rtol=1e-5, atol=1e-4)  # BLAS may sum in another order

@pytest.mark.parametrize('shape', [(5, 28, 28), (28, 28), (5, 783)])
def test_linear1_rejects_unflattened_images(shape):
    with pytest.raises(ValueError) as e: linear1(torch.zeros(shape), torch.zeros(784, 1), torch.zeros(1))
    msg = message(e)
    assert 'one weight per pixel' in msg and f'{shape[-1]} columns' in msg and '784 rows' in msg
    assert 'Flatten' in msg and '.view(-1, 28*28)' in msg

def test_mnist_loss_known_values():
    assert mnist_loss(torch.zeros(4, 1), torch.tensor([[1.], [0.], [1.], [0.]])).item() == 0.5  # sigmoid(0) = 0.5
    s, t = torch.tensor([[2.], [-1.], [0.5]]), torch.tensor([[1.], [0.], [0.]])
    p = s.sigmoid()
    want = ((1 - p[0]) + p[1] + p[2]).item() / 3
    assert mnist_loss(s, t).item() == pytest.approx(want)
    assert mnist_loss(s.view(3), t.view(3)).item() == pytest.approx(want)                         # (n,) is fine too
    assert mnist_loss(s, t.bool()).item() == pytest.approx(want)                                  # bool targets too

@pytest.mark.parametrize('p_shape,t_shape', [((4, 1), (4,)), ((4,), (4, 1)), ((4, 1), (1, 4)), ((4, 1), (3, 1))])
def test_mnist_loss_rejects_different_shapes(p_shape, t_shape):
    with pytest.raises(ValueError) as e: mnist_loss(torch.zeros(p_shape), torch.zeros(t_shape))
    msg = message(e)
    assert 'mnist_loss' in msg and 'same shape' in msg and str(p_shape) in msg and str(t_shape) in msg
    assert '(n, 1)' in msg

@prop
@given(st_=scores_and_targets())
def test_mnist_loss_is_between_0_and_1_for_any_finite_scores(st_):
    s, t = st_
    loss = mnist_loss(s, t)
    assert loss.shape == () and 0 <= loss.item() <= 1

@prop
@given(st_=scores_and_targets(elements=finite32), d=st.floats(1e-3, 1e3))
def test_mnist_loss_does_not_rise_as_scores_move_toward_their_targets(st_, d):
    s, t = st_
    closer = s + d*(2*t - 1)                             # +d where the target is 1 (a 3), -d where it is 0 (a 7)
    assert mnist_loss(closer, t).item() <= mnist_loss(s, t).item() + 1e-6   # float32 sigmoid saturates: allow a tie

@prop
@given(st_=scores_and_targets(elements=st.floats(-10, 10)), d=st.floats(1e-2, 10))
def test_mnist_loss_falls_strictly_as_scores_move_toward_their_targets(st_, d):
    "In float64 and a moderate range, where the sigmoid does not saturate, every nudge shows."
    s, t = (x.double() for x in st_)
    assert mnist_loss(s + d*(2*t - 1), t).item() < mnist_loss(s, t).item()

@prop
@given(st_=scores_and_targets(elements=st.floats(-20, 20, width=32)))
def test_mnist_loss_gradient_points_away_from_the_targets(st_):
    "Gradient descent raises the score of a 3 and lowers that of a 7: d loss / d score is <= 0 for a 3, >= 0 for a 7."
    s, t = st_
    s = s.clone().requires_grad_()
    mnist_loss(s, t).backward()
    assert (s.grad[t == 1] <= 0).all() and (s.grad[t == 0] >= 0).all()

def test_mnist_loss_of_an_empty_batch_is_a_clear_error():
    with pytest.raises(ValueError, match=r'(?i)empty|no (images|scores|predictions)'):
        mnist_loss(torch.zeros(0, 1), torch.zeros(0, 1))

def test_mnist_loss_rejects_targets_other_than_0_and_1():
    with pytest.raises(ValueError, match=r'0.*1'):
        mnist_loss(torch.zeros(3, 1), torch.tensor([[3.], [7.], [2.]]))


# ================================================================= mnist37.training

def test_batch_accuracy_known_values():
    s = torch.tensor([[1.], [-1.], [2.], [-3.], [0.]])
    t = torch.tensor([[1.], [1.], [0.], [0.], [0.]])
    acc = batch_accuracy(s, t)
    assert acc.shape == () and acc.item() == pytest.approx(3/5)   # a score of exactly 0 (p = 0.5) counts as a 7
    assert batch_accuracy(torch.tensor([[0.]]), torch.tensor([[1.]])).item() == 0

@pytest.mark.parametrize('p_shape,t_shape', [((4, 1), (4,)), ((4,), (4, 1)), ((4, 1), (3, 1))])
def test_batch_accuracy_rejects_different_shapes(p_shape, t_shape):
    with pytest.raises(ValueError) as e: batch_accuracy(torch.zeros(p_shape), torch.zeros(t_shape))
    msg = message(e)
    assert 'batch_accuracy' in msg and 'same shape' in msg and str(p_shape) in msg and str(t_shape) in msg

@prop
@given(st_=scores_and_targets())
def test_batch_accuracy_is_the_fraction_on_the_right_side(st_):
    s, t = st_
    acc = batch_accuracy(s, t).item()
    right = sum(int((p > 0.5) == (y == 1)) for p, y in zip(s.sigmoid().view(-1).tolist(), t.view(-1).tolist()))
    assert acc == pytest.approx(right / len(s), abs=1e-6)
    assert batch_accuracy(s, 1 - t).item() == pytest.approx(1 - acc, abs=1e-6)   # flip the labels, flip the score

def test_batch_accuracy_of_an_empty_batch_is_a_clear_error():
    with pytest.raises(ValueError, match=r'(?i)empty|no (images|scores|predictions)'):
        batch_accuracy(torch.zeros(0, 1), torch.zeros(0, 1))

def test_calc_grad_adds_gradients_and_returns_the_loss():
    torch.manual_seed(0)
    w, b = init_params((784, 1)), init_params(1)
    xb, yb = torch.rand(8, 784), torch.tensor([1., 0.]*4).view(8, 1)
    model = lambda x: linear1(x, w, b)
    loss = calc_grad(xb, yb, model)
    assert loss.item() == pytest.approx(mnist_loss(model(xb), yb).item())
    g1 = w.grad.clone()
    calc_grad(xb, yb, model)                       # gradients accumulate: that is why the loop zeroes them
    torch.testing.assert_close(w.grad, 2*g1)

def test_calc_grad_without_trainable_params_is_a_clear_error():
    w, b = torch.zeros(784, 1), torch.zeros(1)
    xb, yb = torch.rand(2, 784), torch.ones(2, 1)
    with pytest.raises(ValueError, match=r'not connected to any parameter.*requires_grad_'):
        calc_grad(xb, yb, lambda x: linear1(x, w, b))
    w.requires_grad_()
    with torch.no_grad(), pytest.raises(ValueError, match=r'torch.no_grad'):
        calc_grad(xb, yb, lambda x: linear1(x, w, b))

@prop
@given(seed=seeds, n=st.integers(1, 60), bs=st.integers(1, 70))
def test_validate_epoch_is_the_accuracy_over_the_whole_set_whatever_the_batch_size(seed, n, bs):
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(n, 3, generator=g), torch.randint(0, 2, (n, 1), generator=g).float()
    model = nn.Linear(3, 1)
    with torch.no_grad(): model.weight.copy_(torch.randn(1, 3, generator=g)); model.bias.copy_(torch.randn(1, generator=g))
    right = ((model(x).sigmoid() > 0.5) == y).sum().item()
    dls = mnist_dls(x, y, x, y, bs=bs)
    v = validate_epoch(model, dls.valid)
    assert isinstance(v, float) and v == round(v, 4)
    assert abs(v - right/n) <= 5e-5 + 1e-7                       # the exact fraction, rounded to 4 places
    one_batch = validate_epoch(model, mnist_dls(x, y, x, y, bs=n).valid)
    assert v == one_batch    # one batch or many: exactly the same

@pytest.mark.parametrize('bs', [3, 5, 7])
def test_validate_epoch_does_not_depend_on_the_batch_size_on_a_rounding_tie(bs):
    x, y = torch.full((32, 1), -1.), torch.ones(32, 1)
    x[0] = 1.                                                     # only the first image is right: 1/32 = 0.03125
    model = lambda xb: xb
    assert validate_epoch(model, mnist_dls(x, y, x, y, bs=32).valid) == 0.0312   # round(0.03125, 4), half to even
    assert validate_epoch(model, mnist_dls(x, y, x, y, bs=bs).valid) == 0.0312

def test_validate_epoch_of_an_empty_loader_is_a_clear_error():
    with pytest.raises(ValueError, match=r'no batches.*validation set'): validate_epoch(nn.Linear(3, 1), [])


# ================================================================= mnist37.learner

@prop
@given(data=st.data(), lr=st.floats(1e-6, 10))
def test_basic_optim_step_is_p_minus_lr_times_grad(data, lr):
    n = data.draw(st.integers(1, 8))
    p0 = torch.tensor(data.draw(st.lists(moderate32, min_size=n, max_size=n)))
    g = torch.tensor(data.draw(st.lists(moderate32, min_size=n, max_size=n)))
    p = p0.clone().requires_grad_()
    p.grad = g.clone()
    opt = BasicOptim([p], lr)
    opt.step()
    assert torch.equal(p.detach(), p0 - g*lr)                   # exactly the float32 update
    for got, a, b in zip(p.tolist(), p0.tolist(), g.tolist()):   # and the real-number one, up to float32 rounding
        assert abs(got - (a - lr*b)) <= 1e-6*(abs(a) + abs(lr*b)) + 1e-30
    assert torch.equal(p.grad, g)                               # step does not touch the gradient
    opt.zero_grad()
    assert p.grad is None

def test_basic_optim_steps_every_param_and_skips_one_without_grad():
    model = nn.Linear(3, 1)
    w0, b0 = model.weight.detach().clone(), model.bias.detach().clone()
    opt = BasicOptim(model.parameters(), 0.5)
    model.weight.grad = torch.ones_like(model.weight)
    opt.step()
    torch.testing.assert_close(model.weight.detach(), w0 - 0.5)
    assert torch.equal(model.bias.detach(), b0)                 # no gradient yet: left alone, as in PyTorch
    model.bias.grad = torch.ones_like(model.bias)
    opt.zero_grad()
    assert model.weight.grad is None and model.bias.grad is None

def test_basic_optim_after_zero_grad_a_step_does_nothing():
    p = torch.ones(3, requires_grad=True); p.grad = torch.ones(3)
    opt = BasicOptim([p], 1.); opt.zero_grad(); opt.step()
    assert torch.equal(p.detach(), torch.ones(3))

def test_basic_optim_bad_arguments():
    model = nn.Linear(3, 1)
    with pytest.raises(TypeError, match=r'parameters, not the model.*model.parameters\(\)'): BasicOptim(model, 1.)
    params = model.parameters()
    BasicOptim(params, 1.)
    with pytest.raises(ValueError, match=r'no parameters.*generator.*only once'): BasicOptim(params, 1.)
    with pytest.raises(ValueError, match=r'no parameters'): BasicOptim([], 1.)
    for lr in ('0.1', None, True, torch.tensor(0.1)):
        with pytest.raises(TypeError, match=r'BasicOptim: lr must be a number'): BasicOptim(model.parameters(), lr)
    for lr in (0, -1., 0.):
        with pytest.raises(ValueError, match=r'BasicOptim: lr must be positive'): BasicOptim(model.parameters(), lr)

@pytest.mark.parametrize('seed', [0, 1, 2])
def test_train_epoch_lowers_the_loss_on_a_separable_problem(seed):
    x, y = separable(seed)
    torch.manual_seed(seed)
    model = nn.Linear(2, 1)
    dls = mnist_dls(x, y, x, y, bs=16)
    opt = BasicOptim(model.parameters(), 1.)
    with torch.no_grad(): losses = [mnist_loss(model(x), y).item()]
    for _ in range(3):
        assert train_epoch(model, dls.train, opt) is None
        with torch.no_grad(): losses.append(mnist_loss(model(x), y).item())
    assert all(b < a for a, b in zip(losses, losses[1:])), losses
    assert all(p.grad is None for p in model.parameters())     # the epoch ends with the gradients cleared

def test_train_epoch_with_the_chapters_linear1():
    "The same loop with the chapter's own `linear1` and `init_params`, through `BasicOptim`."
    x, y = separable(3)
    torch.manual_seed(3)
    w, b = init_params((2, 1)), init_params(1)
    model = lambda xb: linear1(xb, w, b)
    opt = BasicOptim((w, b), 1.)
    dls = mnist_dls(x, y, x, y, bs=16)
    before = validate_epoch(model, dls.valid)
    for _ in range(10): train_epoch(model, dls.train, opt)
    after = validate_epoch(model, dls.valid)
    assert after >= 0.95 and after >= before

def test_train_epoch_of_an_empty_loader_is_a_clear_error():
    model = nn.Linear(2, 1)
    with pytest.raises(ValueError, match=r'no batches.*training set'):
        train_epoch(model, [], BasicOptim(model.parameters(), 1.))

def test_train_model_returns_one_accuracy_per_epoch_and_learns():
    x, y = separable(4)
    torch.manual_seed(4)
    model = nn.Linear(2, 1)
    dls = mnist_dls(x, y, x, y, bs=16)
    accs = train_model(model, dls.train, dls.valid, BasicOptim(model.parameters(), 1.), 8)
    assert len(accs) == 8 and all(isinstance(a, float) and 0 <= a <= 1 for a in accs)
    assert accs[-1] >= 0.95
    assert accs[-1] == validate_epoch(model, dls.valid)
    w0 = model.weight.detach().clone()
    assert train_model(model, dls.train, dls.valid, BasicOptim(model.parameters(), 1.), 0) == []
    assert torch.equal(model.weight.detach(), w0)

@pytest.mark.parametrize('epochs,err,words', [(2.0, TypeError, 'train_model: epochs must be a whole number'), (True, TypeError, 'whole number'),
                                              ('3', TypeError, 'whole number'), (-1, ValueError, 'epochs must be >= 0')])
def test_train_model_bad_epochs(epochs, err, words):
    model = nn.Linear(2, 1)
    with pytest.raises(err, match=words): train_model(model, [], [], BasicOptim(model.parameters(), 1.), epochs)

@prop
@given(n_train=st.integers(1, 50), n_valid=st.integers(1, 50), bs=st.integers(1, 60), d=st.integers(1, 5))
def test_mnist_dls_batches_have_the_right_shapes_and_the_last_is_smaller(n_train, n_valid, bs, d):
    x = torch.arange(float(n_train)).view(-1, 1).expand(n_train, d).contiguous()   # row i holds i: we can track it
    y = (torch.arange(n_train) % 2).float().view(-1, 1)
    vx = torch.arange(float(n_valid)).view(-1, 1).expand(n_valid, d).contiguous()
    vy = torch.ones(n_valid, 1)
    dls = mnist_dls(x, y, vx, vy, bs=bs)
    for dl, n, shuffled in ((dls.train, n_train, True), (dls.valid, n_valid, False)):
        batches = list(dl)
        sizes = [len(xb) for xb, _ in batches]
        full, rest = divmod(n, bs)
        assert sizes == [bs]*full + ([rest] if rest else [])      # only the last batch may be smaller
        for xb, yb in batches:
            assert xb.shape == (len(xb), d) and yb.shape == (len(xb), 1)
            assert xb.dtype == torch.float32 and yb.dtype == torch.float32
        ids = torch.cat([xb[:, 0] for xb, _ in batches]).long().tolist()
        assert sorted(ids) == list(range(n))                         # every row exactly once
        if not shuffled: assert ids == list(range(n))                # the validation set keeps its order
        labels = torch.cat([yb for _, yb in batches])
        src_y = y if dl is dls.train else vy
        assert torch.equal(labels, src_y[ids])                       # each image keeps its own label

def test_mnist_dls_shuffles_the_training_set_only_when_asked():
    x, y = torch.arange(100.).view(-1, 1), torch.zeros(100, 1)
    torch.manual_seed(0)
    ids = torch.cat([xb for xb, _ in mnist_dls(x, y, x, y, bs=10).train]).view(-1).tolist()
    assert sorted(ids) == list(range(100)) and ids != list(range(100))
    ids = torch.cat([xb for xb, _ in mnist_dls(x, y, x, y, bs=10, shuffle=False).train]).view(-1).tolist()
    assert ids == list(range(100))

def test_mnist_dls_default_batch_size_is_256():
    x, y = torch.zeros(600, 784), torch.zeros(600, 1)
    dls = mnist_dls(x, y, x[:300], y[:300])
    assert [len(xb) for xb, _ in dls.train] == [256, 256, 88]
    assert [xb.shape for xb, _ in dls.valid] == [(256, 784), (44, 784)]

@pytest.mark.parametrize('which', ['train', 'valid'])
def test_mnist_dls_rejects_one_label_per_image_mismatch(which):
    x, y = torch.zeros(5, 4), torch.zeros(5, 1)
    args = (x, y[:4], x, y) if which == 'train' else (x, y, x, y[:4])
    with pytest.raises(ValueError) as e: mnist_dls(*args)
    assert f'{which}_x has 5 rows but {which}_y has 4' in message(e) and 'one label' in message(e)

@pytest.mark.parametrize('bs,err,words', [(0, ValueError, 'mnist_dls: bs must be >= 1'), (-3, ValueError, 'bs must be >= 1'),
                                          (2.5, TypeError, 'whole number'), (True, TypeError, 'whole number'),
                                          ('64', TypeError, 'whole number')])
def test_mnist_dls_bad_batch_size(bs, err, words):
    x, y = torch.zeros(5, 4), torch.zeros(5, 1)
    with pytest.raises(err, match=words): mnist_dls(x, y, x, y, bs=bs)


# ================================================================= mnist37.models (notebook 08)

from mnist37 import models

def test_simple_net_is_linear_relu_linear():
    torch.manual_seed(0)
    net = models.simple_net()
    assert [type(m) for m in net] == [nn.Linear, nn.ReLU, nn.Linear]
    assert (net[0].in_features, net[0].out_features, net[2].in_features, net[2].out_features) == (784, 30, 30, 1)
    assert net(torch.rand(5, 784)).shape == (5, 1)
    assert net(torch.rand(0, 784)).shape == (0, 1)
    assert sum(p.numel() for p in net.parameters()) == 784*30 + 30 + 30 + 1
    small = models.simple_net(n_in=2, n_hidden=4)
    assert small(torch.rand(3, 2)).shape == (3, 1)

def test_simple_net_rejects_unflattened_images():
    # simple_net checks no input shapes itself (it is a plain nn.Sequential), so the message is PyTorch's, not
    # ours, and may change between versions: assert only that unflattened images are an error.
    with pytest.raises(RuntimeError): models.simple_net()(torch.rand(2, 28, 28))

@pytest.mark.parametrize('kw,err,words', [(dict(n_hidden=0), ValueError, 'simple_net: n_hidden must be >= 1'),
                                          (dict(n_in=-1), ValueError, 'n_in must be >= 1'),
                                          (dict(n_hidden=2.5), TypeError, 'n_hidden must be a whole number'),
                                          (dict(n_in='784'), TypeError, 'n_in must be a whole number')])
def test_simple_net_bad_sizes(kw, err, words):
    with pytest.raises(err, match=words): models.simple_net(**kw)

def test_simple_net_learns_a_separable_problem_with_basic_optim():
    x, y = separable(5)
    torch.manual_seed(5)
    net = models.simple_net(n_in=2, n_hidden=8)
    dls = mnist_dls(x, y, x, y, bs=16)
    accs = train_model(net, dls.train, dls.valid, BasicOptim(net.parameters(), 1.), 15)
    assert accs[-1] >= 0.95
