"""The self-checking exercises (`mnist37.exercises`, appendix 94): every checker accepts the library's own function, and
rejects the usual wrong versions of it with a hint that names the mistake; `check` never raises; the solutions of
notebook 95 pass."""
import itertools, json, math
from pathlib import Path

import pytest
import torch
from torch import nn, tensor

from mnist37.exercises import check, EXERCISES
from mnist37.baseline import mnist_distance, is_3
from mnist37.quadratic import quadratic, rmse, apply_step
from mnist37.loss import init_params, mnist_loss
from mnist37.training import calc_grad, batch_accuracy
from mnist37.learner import BasicOptim, train_epoch
from mnist37.models import simple_net
from mnist37.full import multi_accuracy
from mnist37.solutions import BasicLearner, MetricCB, digits_loss

ROOT = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------- the library's own functions pass

LIBRARY = dict(mnist_distance=mnist_distance, is_3=is_3, broadcast_shape=torch.broadcast_shapes, rmse=rmse, apply_step=apply_step,
               init_params=init_params, mnist_loss=mnist_loss, calc_grad=calc_grad, batch_accuracy=batch_accuracy,
               BasicOptim=BasicOptim, train_epoch=train_epoch, simple_net=simple_net, relu=torch.relu,
               view_shape=lambda shape, new: torch.empty(shape).view(*new).shape,
               unsqueeze_shape=lambda shape, dim: torch.empty(shape).unsqueeze(dim).shape,
               BasicLearner=BasicLearner, MetricCB=MetricCB, multi_accuracy=multi_accuracy, digits_loss=digits_loss)

def _grad_at(f, x):
    x = x.clone().requires_grad_()
    f(x).backward()
    return x.grad

def _descend(f, x0, lr, steps, sign=-1, zero=True, start=True):
    x = tensor(float(x0)).requires_grad_()
    path = [x.item()] if start else []
    for _ in range(steps):
        f(x).backward()
        with torch.no_grad(): x += sign * lr * x.grad
        if zero: x.grad.zero_()
        path.append(x.item())
    return tensor(path)

LIBRARY.update(grad_at=_grad_at, descend=_descend)

def test_names():
    assert sorted(EXERCISES) == sorted(LIBRARY)
    for name, ex in EXERCISES.items():
        assert ex.notebook[:2] in {'02', '03', '04', '05', '06', '07', '08', '11'} and (ROOT/'nbs'/f'{ex.notebook}.ipynb').exists()
        assert isinstance(ex.prompt, str) and len(ex.prompt) > 40, name
    per_notebook = {nb: sum(ex.notebook == nb for ex in EXERCISES.values()) for nb in {ex.notebook for ex in EXERCISES.values()}}
    assert len(per_notebook) == 8 and min(per_notebook.values()) >= 2, per_notebook

@pytest.mark.parametrize('name', sorted(LIBRARY))
def test_the_library_passes(name, capsys):
    assert check(name, LIBRARY[name])
    assert capsys.readouterr().out.startswith(f'✓ {name}: right on all')

# ---------------------------------------------------------------- the usual mistakes, each named by its hint

def _step(params, t, targets, lr, sign=-1, zero=True, after=False, rebind=False):
    loss = rmse(quadratic(t, params), targets)
    loss.backward()
    if rebind: params = params - lr * params.grad
    else:
        with torch.no_grad(): params += sign * lr * params.grad
    if zero: params.grad.zero_()
    return rmse(quadratic(t, params), targets).item() if after else loss.item()

def _bshape(a, b, left=False, pick=max):
    n = max(len(a), len(b))
    pad = lambda s: tuple(s) + (1,)*(n-len(s)) if left else (1,)*(n-len(s)) + tuple(s)
    return tuple(map(pick, pad(a), pad(b)))

def _insert(shape, dim): s = list(shape); s.insert(dim, 1); return tuple(s)

def _calc(xb, yb, model, loss_func=mnist_loss, backward=True, own_loss=True, zero=False, ret=True):
    if zero: model.zero_grad()
    loss = (loss_func if own_loss else mnist_loss)(model(xb), yb)
    if backward: loss.backward()
    if ret: return loss

def _accuracy(xb, yb, sigmoid=True, op=torch.gt, at=0.5, squeeze=False, count=False):
    right = op(xb.sigmoid() if sigmoid else xb, at) == (yb.view(-1) if squeeze else yb)
    return right.float().sum() if count else right.float().mean()

def optim(sign=-1, use_lr=True, clear=True, keep_list=True):
    class Optim:
        def __init__(self, params, lr): self.params, self.lr = (list(params) if keep_list else params), lr
        def step(self, *args, **kwargs):
            for p in self.params: p.data += sign * p.grad.data * (self.lr if use_lr else 1.)
        def zero_grad(self, *args, **kwargs):
            if clear:
                for p in self.params: p.grad = None
    return Optim

def _epoch(model, dl, opt, loss_func=mnist_loss, zero=True, order='grad step zero', use_loss=True, first_only=False):
    for xb, yb in dl:
        for what in order.split():
            if what == 'grad': calc_grad(xb, yb, model, loss_func if use_loss else mnist_loss)
            if what == 'step': opt.step()
            if what == 'zero' and zero: opt.zero_grad()
        if first_only: return
    if order == 'grad': opt.step()

def _net(relu=True, end=None, sizes=None):
    def simple_net(n_in=28*28, n_hidden=30):
        n_in, n_hidden = sizes or (n_in, n_hidden)
        layers = [nn.Linear(n_in, n_hidden), *([nn.ReLU()] if relu else []), nn.Linear(n_hidden, 1), *([end] if end else [])]
        return nn.Sequential(*layers)
    return simple_net

def _relu_in_place(x): x[x < 0] = 0; return x

def _learner(zero=True, step='batch', call=('after_batch', 'after_epoch'), keep_loss=True, epoch_attr=True):
    "A learner class written with one of the usual mistakes."
    class Learner:
        def __init__(self, dls, model, opt_func, loss_func, cbs=()):
            self.dls, self.model, self.opt_func, self.loss_func, self.cbs = dls, model, opt_func, loss_func, cbs
        def fit(self, n_epoch, lr):
            opt = self.opt_func(self.model.parameters(), lr)
            for epoch in range(n_epoch):
                if epoch_attr: self.epoch = epoch
                for xb, yb in self.dls.train:
                    loss = self.loss_func(self.model(xb), yb)
                    if keep_loss: self.loss = loss
                    loss.backward()
                    if step == 'batch': opt.step()
                    if zero and step == 'batch': opt.zero_grad()
                    for cb in self.cbs:
                        if 'after_batch' in call: cb.after_batch(self)
                if step == 'epoch': opt.step(); opt.zero_grad()
                for cb in self.cbs:
                    if 'after_epoch' in call: cb.after_epoch(self)
    return Learner

def _metric_cb(weighted=True, ds='valid', append=True):
    "A metric callback written with one of the usual mistakes."
    class Metric:
        def __init__(self, metric): self.metric, self.values = metric, []
        def after_epoch(self, learn):
            with torch.no_grad():
                vals = [(self.metric(learn.model(xb), yb).item(), len(xb)) for xb, yb in getattr(learn.dls, ds)]
            v = sum(m*n for m, n in vals) / sum(n for _, n in vals) if weighted else sum(m for m, _ in vals) / len(vals)
            self.values = self.values + [v] if append else [v]
    return Metric

_rows = lambda p, t: p.softmax(-1)[torch.arange(len(t)), t]

# (exercise, a wrong answer, words its hint must hold; None: only rejected, with no mistake named)
WRONG = [
    ('mnist_distance', lambda a, b: (a-b).mean((-1, -2)), 'not made positive'),
    ('mnist_distance', lambda a, b: (a-b).abs().mean(), 'over every axis'),
    ('mnist_distance', lambda a, b: (a-b).abs().mean((1, 2)), 'count from the end'),
    ('mnist_distance', lambda a, b: ((a-b)**2).mean((-1, -2)).sqrt(), None),
    ('is_3', lambda x, m3, m7: mnist_distance(x, m3) > mnist_distance(x, m7), 'wrong way round'),
    ('is_3', lambda x, m3, m7: mnist_distance(x, m3) <= mnist_distance(x, m7), 'calls a tie a 3'),
    ('is_3', lambda x, m3, m7: (mnist_distance(x, m3) < mnist_distance(x, m7)).float(), 'floats'),
    ('is_3', lambda x, m3, m7: (x-m3).mean((-1, -2)) < (x-m7).mean((-1, -2)), None),
    ('broadcast_shape', lambda a, b: _bshape(a, b, left=True), 'from the left'),
    ('broadcast_shape', lambda a, b: max(a, b, key=len), 'longer shape'),
    ('broadcast_shape', lambda a, b: _bshape(a, b, pick=min), 'not the other way round'),
    ('broadcast_shape', lambda a, b: list(torch.broadcast_shapes(a, b)), 'a list'),
    ('grad_at', lambda f, x: f(x), 'value f(x)'),
    ('grad_at', lambda f, x: 2 * _grad_at(f, x), 'backward ran twice'),
    ('grad_at', lambda f, x: -_grad_at(f, x), 'sign is flipped'),
    ('grad_at', lambda f, x: (x.requires_grad_(), f(x), x.grad)[2], 'nothing came back'),
    ('descend', lambda *a: _descend(*a, zero=False), 'never zeroed'),
    ('descend', lambda *a: _descend(*a, sign=1), 'uphill'),
    ('descend', lambda *a: _descend(*a, start=False), 'start is missing'),
    ('rmse', lambda p, t: ((p-t)**2).mean(), 'square root is missing'),
    ('rmse', lambda p, t: (p-t).abs().mean(), 'mean absolute error'),
    ('rmse', lambda p, t: ((p-t)**2).sum().sqrt(), 'root of the sum'),
    ('apply_step', lambda *a: _step(*a, rebind=True, zero=False), 'did not change'),
    ('apply_step', lambda *a: _step(*a, sign=1), 'uphill'),
    ('apply_step', lambda *a: _step(*a, after=True), None),
    ('apply_step', lambda *a: _step(*a, zero=False), 'gradient was left'),
    ('init_params', lambda size, std=1.0: torch.randn(size).requires_grad_() * std, 'not a leaf'),
    ('init_params', lambda size, std=1.0: torch.randn(size) * std, 'does not require grad'),
    ('init_params', lambda size, std=1.0: (torch.rand(size) * std).requires_grad_(), 'uniform'),
    ('init_params', lambda size, std=1.0: torch.randn(size).requires_grad_(), None),
    ('mnist_loss', lambda p, t: torch.where(t == 1, 1-p, p).mean(), 'sigmoid was forgotten'),
    ('mnist_loss', lambda p, t: torch.where(t == 1, p.sigmoid(), 1-p.sigmoid()).mean(), 'branches of torch.where are swapped'),
    ('mnist_loss', lambda p, t: torch.where(t == 1, 1-p.sigmoid(), p.sigmoid()), 'no mean'),
    ('mnist_loss', lambda p, t: torch.where(t == 1, 1-p.sigmoid(), p.sigmoid()).sum(), None),
    ('view_shape', lambda s, n: tuple(n), '-1 is still there'),
    ('view_shape', lambda s, n: tuple(s[0] if k == -1 else k for k in n), "kept x's first axis"),
    ('view_shape', lambda s, n: tuple(math.prod(s) // math.prod(n) if k == -1 else k for k in n), 'different count'),
    ('view_shape', lambda s, n: list(torch.empty(s).view(*n).shape), 'a list'),
    ('unsqueeze_shape', _insert, 'list.insert'),
    ('unsqueeze_shape', lambda s, d: tuple(s), 'unchanged'),
    ('unsqueeze_shape', lambda s, d: (*s, 1), 'always went at the end'),
    ('unsqueeze_shape', lambda s, d: (1, *s), None),
    ('calc_grad', lambda *a: _calc(*a, backward=False), 'was backward called'),
    ('calc_grad', lambda *a: _calc(*a, own_loss=False), 'was ignored'),
    ('calc_grad', lambda *a: _calc(*a, zero=True), 'thrown away'),
    ('calc_grad', lambda *a: _calc(*a, ret=False), 'nothing came back'),
    ('batch_accuracy', lambda x, y: _accuracy(x, y, sigmoid=False), 'sigmoid is missing'),
    ('batch_accuracy', lambda x, y: _accuracy(x, y, op=torch.ge), '`>=`'),
    ('batch_accuracy', lambda x, y: _accuracy(x, y, at=0.), None),
    ('batch_accuracy', lambda x, y: _accuracy(x, y, squeeze=True), '(n, n)'),
    ('batch_accuracy', lambda x, y: _accuracy(x, y, count=True), None),
    ('BasicOptim', optim(clear=False), 'left the gradients'),
    ('BasicOptim', optim(sign=1), 'uphill'),
    ('BasicOptim', optim(use_lr=False), None),
    ('BasicOptim', optim(keep_list=False), 'generator'),
    ('train_epoch', lambda *a: _epoch(*a, zero=False), 'never cleared'),
    ('train_epoch', lambda *a: _epoch(*a, order='grad zero step'), 'did not move'),
    ('train_epoch', lambda *a: _epoch(*a, order='grad'), 'once, after the loop'),
    ('train_epoch', lambda *a: _epoch(*a, use_loss=False), None),
    ('train_epoch', lambda *a: _epoch(*a, first_only=True), None),
    ('simple_net', _net(relu=False), 'no ReLU'),
    ('simple_net', _net(end=nn.Sigmoid()), 'no sigmoid at the end'),
    ('simple_net', _net(end=nn.ReLU()), None),
    ('simple_net', _net(sizes=(28*28, 30)), 'use n_in and n_hidden'),
    ('simple_net', _net()(), 'function that builds'),
    ('relu', _relu_in_place, 'in place'),
    ('relu', lambda x: x.abs(), 'abs'),
    ('relu', lambda x: (x > 0).float(), 'which numbers are positive'),
    ('relu', lambda x: x.clamp(max=0), None),
    ('BasicLearner', _learner(zero=False), 'never cleared'),
    ('BasicLearner', _learner(step='epoch'), 'once an epoch'),
    ('BasicLearner', _learner(call=('after_epoch',)), '`after_batch` was never called'),
    ('BasicLearner', _learner(call=('after_batch',)), '`after_epoch` was never called'),
    ('BasicLearner', _learner(keep_loss=False), 'keep it as `self.loss`'),
    ('BasicLearner', _learner(epoch_attr=False), 'for self.epoch in range'),
    ('BasicLearner', _learner(step='never'), None),
    ('MetricCB', _metric_cb(weighted=False), 'weight each batch'),
    ('MetricCB', _metric_cb(ds='train'), 'training set'),
    ('MetricCB', _metric_cb(append=False), 'one number per epoch'),
    ('multi_accuracy', lambda x, y: (x.argmax(0) == y).float().mean(), 'axis 0'),
    ('multi_accuracy', lambda x, y: (x.max(-1)[0] == y).float().mean(), 'largest score itself'),
    ('multi_accuracy', lambda x, y: (x.argmax(-1) == y).float().sum(), 'count'),
    ('multi_accuracy', lambda x, y: (x.argmin(-1) == y).float().mean(), None),
    ('digits_loss', lambda p, t: (1 - p.softmax(0)[torch.arange(len(t)), t]).mean(), 'axis 0'),
    ('digits_loss', lambda p, t: (1 - p.sigmoid()[torch.arange(len(t)), t]).mean(), 'sigmoid'),
    ('digits_loss', lambda p, t: _rows(p, t).mean(), '1 minus it'),
    ('digits_loss', lambda p, t: 1 - _rows(p, t), 'no mean'),
    ('digits_loss', lambda p, t: torch.nn.functional.cross_entropy(p, t), 'cross-entropy'),
]

def test_three_mistakes_each():
    counts = {name: sum(w[0] == name and w[2] is not None for w in WRONG) for name in EXERCISES}
    assert min(counts.values()) >= 3, counts

@pytest.mark.parametrize('name,wrong,words', WRONG, ids=[f'{w[0]}-{w[2]}' for w in WRONG])
def test_a_usual_mistake_is_named(name, wrong, words, capsys):
    assert not check(name, wrong)
    out = capsys.readouterr().out
    assert out.startswith(f'✗ {name}, on ') and out.count('\n') == 1, out   # one line: which case, expected, got, why
    assert ('expected' in out or ': it raised ' in out) and (words is None or words.lower() in out.lower()), out

# ---------------------------------------------------------------- check never raises

def _stub(*args, **kwargs): raise NotImplementedError  # your code here

GARBAGE = [_stub, None, 3, 'mnist_loss', lambda: 0, lambda *a, **k: None, lambda *a, **k: 'nonsense', lambda *a, **k: [1, 2],
           lambda *a, **k: torch.zeros(2, 2), lambda *a, **k: 1/0, lambda *a, **k: (_ for _ in ()).throw(KeyError('x'))]

@pytest.mark.parametrize('name', sorted(EXERCISES))
def test_check_never_raises(name, capsys):
    for answer in GARBAGE:
        assert not check(name, answer)
        out = capsys.readouterr().out
        assert out.startswith(f'✗ {name}, on ') and out.count('\n') == 1, out

def test_a_stub_gets_one_quiet_line(capsys):
    assert not check('mnist_loss', _stub)
    assert capsys.readouterr().out == ("✗ mnist_loss, on 6 scores: it raised NotImplementedError. It is not written yet: "
                                       "replace `raise NotImplementedError` with your code.\n")

def test_a_notebook_shows_only_the_line(capsys):
    "Jupyter displays nothing for check's result (no True or False under the line); the result keeps the hint."
    from IPython.core.formatters import DisplayFormatter
    for answer in (_stub, mnist_loss):
        v = check('mnist_loss', answer)
        assert DisplayFormatter().format(v) == ({}, {}), DisplayFormatter().format(v)
    assert capsys.readouterr().out.splitlines()[0] == '✗ ' + check('mnist_loss', _stub).hint

def test_a_wrong_signature_and_not_a_function(capsys):
    check('mnist_distance', lambda a: a); assert 'Check calls it as mnist_distance(a, b)' in capsys.readouterr().out
    check('mnist_loss', mnist_loss(tensor([[0.]]), tensor([[1]]))); assert 'its name, without brackets' in capsys.readouterr().out

@pytest.mark.parametrize('name', ['nope', '', None, 3, ['mnist_loss'], 'MNIST_LOSS'])
def test_unknown_names(name, capsys):
    assert not check(name, mnist_loss)
    out = capsys.readouterr().out
    assert out.startswith('✗ unknown exercise') and 'mnist_distance, is_3' in out and out.count('\n') == 1, out

def test_check_leaves_the_learners_state_alone():
    torch.manual_seed(7); want = torch.rand(3)
    torch.manual_seed(7)
    with torch.no_grad(): assert check('calc_grad', calc_grad)   # grad mode is turned on for the check...
    assert torch.equal(torch.rand(3), want) and torch.is_grad_enabled()  # ...and the random stream is the learner's

# ---------------------------------------------------------------- the solutions notebook

def test_the_solutions_pass(capsys):
    "Every code cell of nbs/95_solutions.ipynb, run in one namespace: each solution is checked, and asserted True."
    nb = json.loads((ROOT/'nbs'/'95_solutions.ipynb').read_text())
    ns = {}
    for cell in nb['cells']:
        if cell['cell_type'] == 'code': exec(''.join(cell['source']), ns)
    out = capsys.readouterr().out
    assert out.count('✓') == len(EXERCISES) and '✗' not in out, out

# ---------------------------------------------------------------- check in Korean (the notebooks of nbs/ko/ set MNIST37_LANG)

def test_check_speaks_korean_where_mnist37_lang_is_ko(capsys, monkeypatch):
    "Its lines and hints come from the package's mnist37/locale/ko, chosen at each call; English stays the default."
    monkeypatch.setenv('MNIST37_LANG', 'ko')
    assert not check('mnist_loss', _stub) and check('mnist_loss', mnist_loss)
    assert capsys.readouterr().out == ("✗ mnist_loss, 점수 6개의 경우: 오류가 났습니다(NotImplementedError). 아직 작성하지 않았습니다. "
                                       "`raise NotImplementedError`를 여러분의 코드로 바꾸세요.\n✓ mnist_loss: 숨겨진 경우 3개를 모두 맞혔습니다.\n")
    check('rmse', lambda p, t: ((p-t)**2).mean())
    out = capsys.readouterr().out
    assert out.startswith('✗ rmse, 예측 20개의 경우: 기대한 값은 크기 ()의 tensor(') and '제곱근이 빠졌습니다.' in out, out
    monkeypatch.delenv('MNIST37_LANG')
    check('mnist_loss', mnist_loss); assert capsys.readouterr().out == '✓ mnist_loss: right on all 3 hidden cases.\n'

def test_every_hint_has_its_korean(monkeypatch):
    from mnist37.exercises import _GENERAL, _RAISED, _tr
    hints = [h for ex in EXERCISES.values() for _, h in ex.diagnoses] + [h for _, h in _GENERAL + _RAISED]
    monkeypatch.setenv('MNIST37_LANG', 'ko')
    assert [h for h in hints if _tr(h) == h] == []
