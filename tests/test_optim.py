"""Optimizers against torch.optim step by step (params and state buffers), bit-for-bit resume
from state_dict, schedules against torch.optim.lr_scheduler, clipping against
torch.nn.utils, and bad inputs with their messages."""

import copy
import json
import math

import numpy as np
import pytest

from pyrnn.optim import (
    SGD,
    Adam,
    AdamW,
    CosineAnnealingLR,
    ExponentialLR,
    ReduceLROnPlateau,
    RMSprop,
    StepLR,
    clip_grad_norm_,
    clip_grad_value_,
    get_optimizer,
    optimizer_from_state,
)

SHAPES = [(3, 4), (5,), (2, 3, 2)]
GRAD_SCALES = [1.0, 1e-2, 10.0]  # per parameter: eps and clipping see different magnitudes
TOL = {np.float64: dict(rtol=1e-12, atol=1e-12), np.float32: dict(rtol=1e-6, atol=1e-6)}
# State buffers in float32: centered RMSprop's sqrt(v - a^2) cancels, and both libraries' float32
# buffers then lie ~5e-6 from the float64 truth (in different directions); params stay within 1e-6.
BUFFER_TOL = {np.float64: TOL[np.float64], np.float32: dict(rtol=1e-5, atol=1e-6)}
N_STEPS = 10

OPTIMIZERS = [
    (SGD, dict(lr=0.1)),
    (SGD, dict(lr=0.1, momentum=0.9)),
    (SGD, dict(lr=0.1, momentum=0.9, dampening=0.3, weight_decay=0.05)),
    (SGD, dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.01)),
    (RMSprop, dict()),
    (RMSprop, dict(centered=True)),
    (RMSprop, dict(momentum=0.7, weight_decay=0.1)),
    (RMSprop, dict(lr=0.003, alpha=0.3, centered=True, momentum=0.5, weight_decay=0.02)),  # lerp weight >= 0.5
    (Adam, dict()),
    (Adam, dict(lr=0.01, weight_decay=0.1)),
    (Adam, dict(lr=0.01, amsgrad=True)),
    (Adam, dict(lr=0.02, betas=(0.3, 0.8), eps=1e-4)),  # beta1 < 0.5: lerp's other branch
    (AdamW, dict()),
    (AdamW, dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
    (AdamW, dict(lr=0.02, betas=(0.5, 0.9), weight_decay=0.0)),
]
OPT_IDS = [f"{cls.__name__}-" + "-".join(f"{k}={v}" for k, v in kw.items()) for cls, kw in OPTIMIZERS]


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def _problem(dtype, seed=0, n_steps=N_STEPS):
    """Initial params and a gradient sequence (one list per step)."""
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    grads = [[(scale * rng.standard_normal(s)).astype(dtype) for s, scale in zip(SHAPES, GRAD_SCALES)] for _ in range(n_steps)]
    return params, grads


def _pairs(params):
    return [(p.copy(), np.zeros_like(p)) for p in params]


def _run(opt, pairs, grads):
    for step_grads in grads:
        for (_, g), new in zip(pairs, step_grads):
            g[...] = new
        opt.step()


# ----------------------------------------------------------------- vs torch


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cls, kw", OPTIMIZERS, ids=OPT_IDS)
def test_optimizer_matches_torch(torch, cls, kw, dtype):
    params, grads = _problem(dtype)
    pairs = _pairs(params)
    opt = cls(pairs, **kw)
    tparams = [torch.tensor(p.copy(), requires_grad=True) for p in params]
    topt = getattr(torch.optim, cls.__name__)(tparams, **kw)
    for k, step_grads in enumerate(grads):
        if k == 5:  # lr is a mutable attribute, as schedules use it
            opt.lr = topt.param_groups[0]["lr"] = opt.lr * 0.5
        for (_, g), tp, new in zip(pairs, tparams, step_grads):
            g[...] = new
            tp.grad = torch.tensor(new.copy())
        opt.step()
        topt.step()
        for i, ((p, _), tp) in enumerate(zip(pairs, tparams)):
            np.testing.assert_allclose(p, tp.detach().numpy(), **TOL[dtype], err_msg=f"param {i} after step {k + 1}")
    state = opt.state_dict()
    for i, tp in enumerate(tparams):  # buffers carry torch's state names
        tstate = {name: v for name, v in topt.state[tp].items() if name != "step"}
        assert sorted(tstate) == sorted(key[: -len(f".{i}")] for key in state["buffers"] if key.endswith(f".{i}"))
        for name, v in tstate.items():
            np.testing.assert_allclose(state["buffers"][f"{name}.{i}"], v.numpy(), **BUFFER_TOL[dtype], err_msg=name)
        if "step" in topt.state[tp]:
            assert state["step"] == int(topt.state[tp]["step"])


ADAMS = [(cls, kw) for cls, kw in OPTIMIZERS if issubclass(cls, Adam)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cls, kw", ADAMS, ids=[i for i, (c, _) in zip(OPT_IDS, OPTIMIZERS) if issubclass(c, Adam)])
def test_fused_adam_is_the_numpy_update_bit_for_bit(cls, kw, dtype, monkeypatch):
    pytest.importorskip("pyrnn._C")
    rng = np.random.default_rng(1)
    shapes = SHAPES + [(3, 40_000)]  # a tensor of several chunks: the team's path too
    params = [rng.standard_normal(s).astype(dtype) for s in shapes]
    grads = [[(10.0 ** rng.integers(-3, 3) * rng.standard_normal(s)).astype(dtype) for s in shapes] for _ in range(6)]
    grads[3][0][0, 0], grads[4][1][2] = np.nan, np.inf  # non-finite gradients propagate alike
    got, want = [], []
    for fused, out in ((True, got), (False, want)):
        monkeypatch.setattr(Adam, "fused", fused)
        pairs = [(p.copy(), np.zeros_like(p)) for p in params]
        opt = cls(pairs, **kw)
        with np.errstate(invalid="ignore", over="ignore"):  # NumPy's warnings on inf / inf; the kernel has none
            _run(opt, pairs, grads)
        out += [p for p, _ in pairs] + [b for bufs in opt._buffers.values() for b in bufs]
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


def test_fused_adam_leaves_non_contiguous_params_to_numpy():
    base = np.random.default_rng(2).standard_normal((4, 6))
    p, g = base[:, ::2], np.ones((4, 3))
    ref = p.copy()
    opt = Adam([(p, g)], lr=0.1)
    opt.step()
    np.testing.assert_allclose(p, ref - 0.1, rtol=1e-6)  # Adam's first step: lr * sign(g)


@pytest.mark.parametrize("cls", [SGD, RMSprop, Adam, AdamW])
def test_defaults_are_torchs(torch, cls):
    params, _ = _problem(np.float64)
    ours = cls(_pairs(params)).get_config()
    theirs = getattr(torch.optim, cls.__name__)([torch.zeros(1)]).defaults
    assert ours == {k: list(theirs[k]) if k == "betas" else theirs[k] for k in ours}


def test_step_updates_params_in_place_and_only_reads_grads():
    params, grads = _problem(np.float32)
    pairs = _pairs(params)
    p0 = pairs[0][0]
    opt = AdamW(pairs, lr=0.1, weight_decay=0.5)
    _run(opt, pairs, grads[:1])
    assert opt._pairs[0][0] is p0 and not np.array_equal(p0, params[0]) and p0.dtype == np.float32
    for (_, g), new in zip(pairs, grads[0]):
        np.testing.assert_array_equal(g, new)
    opt.zero_grad()
    assert all(not g.any() for _, g in pairs)


# ------------------------------------------------------------ state and resume


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cls, kw", OPTIMIZERS, ids=OPT_IDS)
def test_resume_is_bit_for_bit(cls, kw, dtype):
    params, grads = _problem(dtype, seed=1)
    pairs = _pairs(params)
    opt = cls(pairs, **kw)
    _run(opt, pairs, grads[:4])
    state = opt.state_dict()
    state["config"] = json.loads(json.dumps(state["config"]))  # a checkpoint's config is JSON
    saved_params = [p.copy() for p, _ in pairs]
    _run(opt, pairs, grads[4:])  # uninterrupted; must not touch the saved state's buffers

    resumed_pairs = [(p.copy(), np.zeros_like(p)) for p in saved_params]
    resumed = optimizer_from_state(state, resumed_pairs)
    assert type(resumed) is cls and resumed.step_count == 4
    _run(resumed, resumed_pairs, grads[4:])
    for (p, _), (q, _) in zip(pairs, resumed_pairs):
        np.testing.assert_array_equal(p, q)
    a, b = opt.state_dict(), resumed.state_dict()
    assert a["config"] == b["config"] and a["step"] == b["step"] == N_STEPS
    assert sorted(a["buffers"]) == sorted(b["buffers"])
    for key in a["buffers"]:
        np.testing.assert_array_equal(a["buffers"][key], b["buffers"][key], err_msg=key)


def test_load_state_dict_restores_lr_and_replaces_buffers():
    params, grads = _problem(np.float64)
    pairs = _pairs(params)
    opt = SGD(pairs, lr=0.3, momentum=0.9)
    _run(opt, pairs, grads[:2])
    other = SGD(_pairs(params), lr=0.01)  # no momentum buffer yet
    other.load_state_dict(opt.state_dict())
    assert other.lr == 0.3 and other.momentum == 0.9 and other.step_count == 2
    np.testing.assert_array_equal(other.state_dict()["buffers"]["momentum_buffer.1"], opt.state_dict()["buffers"]["momentum_buffer.1"])


def _bad_states():
    params, grads = _problem(np.float64)
    pairs = _pairs(params)
    opt = Adam(pairs, amsgrad=True)
    _run(opt, pairs, grads[:2])
    good = opt.state_dict()

    def edit(fn):
        s = copy.deepcopy(good)
        fn(s)
        return s

    return params, [
        (SGD(_pairs(params)).state_dict(), ValueError, r"state\['class'\]: expected 'Adam', got 'SGD'"),
        (Adam(_pairs(params[:2]), amsgrad=True).state_dict(), ValueError, r"state\['num_params'\]: expected 3 \(this optimizer's parameters\), got 2"),
        (edit(lambda s: s["buffers"].update({"exp_avg.2": np.zeros((2, 3))})), ValueError,
         r"state\['buffers'\]\['exp_avg.2'\]: expected shape \(2, 3, 2\), got \(2, 3\)"),
        (edit(lambda s: s["buffers"].pop("max_exp_avg_sq.0")), ValueError, r"state\['buffers'\]: expected keys \['exp_avg.0'"),
        (edit(lambda s: s["config"].update(amsgrad=False)), ValueError, r"state\['buffers'\]: expected keys"),  # no max_exp_avg_sq then
        (edit(lambda s: s["config"].pop("eps")), ValueError, r"state\['config'\]: expected keys \['amsgrad', 'betas', 'eps'"),
        (edit(lambda s: s["config"].update(lr=-1.0)), ValueError, r"lr: expected a finite number in \[0, inf\), got -1.0"),
        (edit(lambda s: s.update(step=-1)), ValueError, r"state\['step'\]: expected an integer >= 0, got -1"),
        (edit(lambda s: s.pop("num_params")), ValueError, r"missing \['num_params'\]"),
        (edit(lambda s: s["buffers"].update({"exp_avg.0": np.zeros((3, 4), int)})), TypeError, "expected a floating-point array, got dtype int"),
    ]


def test_load_state_dict_is_strict_and_atomic():
    params, cases = _bad_states()
    for state, exc, msg in cases:
        opt = Adam(_pairs(params), lr=0.5, amsgrad=True)
        before = opt.state_dict()
        with pytest.raises(exc, match=msg):
            opt.load_state_dict(state)
        after = opt.state_dict()
        assert after["config"] == before["config"] and after["step"] == 0
        assert all(np.array_equal(after["buffers"][k], before["buffers"][k]) for k in before["buffers"])


# --------------------------------------------------------- registry and inputs


def test_get_optimizer():
    params, _ = _problem(np.float64)
    opt = get_optimizer("AdamW", _pairs(params), lr=0.02)
    assert type(opt) is AdamW and opt.lr == 0.02 and opt.weight_decay == 1e-2
    assert get_optimizer(opt, None) is opt
    for name, cls in [("sgd", SGD), ("rmsprop", RMSprop), ("adam", Adam), ("adamw", AdamW)]:
        assert type(get_optimizer(name, _pairs(params))) is cls
    with pytest.raises(ValueError, match=r"optimizer: expected one of \['adam', 'adamw', 'rmsprop', 'sgd'\], got 'adagrad'"):
        get_optimizer("adagrad", _pairs(params))
    with pytest.raises(ValueError, match=r"kwargs: expected none with an optimizer instance, got \['lr'\]"):
        get_optimizer(opt, None, lr=0.1)
    with pytest.raises(ValueError, match=r"state\['class'\]: expected one of \['Adam', 'AdamW', 'RMSprop', 'SGD'\], got 'Lion'"):
        optimizer_from_state({"class": "Lion"}, _pairs(params))


def _bad_constructors():
    p = np.zeros((2, 3))
    ro = np.zeros(3)
    ro.flags.writeable = False
    ok = [(p, np.zeros_like(p))]
    return [
        (lambda: SGD(ok, lr=-0.1), ValueError, r"lr: expected a finite number in \[0, inf\), got -0.1"),
        (lambda: SGD(ok, lr=float("nan")), ValueError, r"lr: expected a finite number in \[0, inf\), got nan"),
        (lambda: SGD(ok, nesterov=True), ValueError, "nesterov: expected momentum > 0 and dampening = 0, got momentum=0.0"),
        (lambda: SGD(ok, momentum=0.9, dampening=0.1, nesterov=True), ValueError, "dampening = 0, got momentum=0.9, dampening=0.1"),
        (lambda: SGD(ok, nesterov=1), TypeError, "nesterov: expected True or False, got int"),
        (lambda: Adam(ok, betas=(1.0, 0.9)), ValueError, r"betas\[0\]: expected a finite number in \[0, 1\), got 1.0"),
        (lambda: Adam(ok, betas=0.9), ValueError, r"betas: expected a pair \(beta1, beta2\), got 0.9"),
        (lambda: RMSprop(ok, eps=-1e-8), ValueError, r"eps: expected a finite number in \[0, inf\)"),
        (lambda: Adam([]), ValueError, r"params: expected at least one \(param, grad\) pair, got an empty list"),
        (lambda: Adam(p), TypeError, r"params: expected a list of \(param, grad\) pairs of arrays, got ndarray"),
        (lambda: Adam([p]), TypeError, r"params\[0\]: expected a \(param, grad\) pair, got ndarray"),
        (lambda: Adam([(p, np.zeros(3))]), ValueError, r"params\[0\] grad: expected shape \(2, 3\) and dtype float64 \(the param's\), got \(3,\) float64"),
        (lambda: Adam([(p, np.zeros((2, 3), np.float32))]), ValueError, r"got \(2, 3\) float32"),
        (lambda: Adam([(p.tolist(), p)]), TypeError, r"params\[0\] param: expected a float32 or float64 ndarray, got list"),
        (lambda: Adam([(np.zeros(3, int), np.zeros(3, int))]), TypeError, "param: expected a float32 or float64 ndarray, got dtype int"),
        (lambda: Adam([(ro, np.zeros(3))]), ValueError, r"params\[0\]: expected writeable arrays, got a read-only param"),
    ]


@pytest.mark.parametrize("k", range(len(_bad_constructors())))
def test_bad_constructor_arguments(k):
    make, exc, msg = _bad_constructors()[k]
    with pytest.raises(exc, match=msg):
        make()


def test_lr_setter_validates():
    opt = SGD([(np.zeros(2), np.zeros(2))])
    opt.lr = 0.5
    assert opt.lr == 0.5 and opt.get_config()["lr"] == 0.5
    with pytest.raises(ValueError, match=r"lr: expected a finite number in \[0, inf\), got -1.0"):
        opt.lr = -1


# ---------------------------------------------------------------- schedules

SCHEDULES = [
    (StepLR, dict(step_size=3, gamma=0.5)),
    (StepLR, dict(step_size=1)),
    (ExponentialLR, dict(gamma=0.9)),
    (CosineAnnealingLR, dict(T_max=10, eta_min=0.001)),
    (CosineAnnealingLR, dict(T_max=7)),  # 30 epochs run past T_max: the curve comes back up
]
N_EPOCHS = 30


def _lr_pair(torch, lr=0.1):
    opt = SGD([(np.zeros(2), np.zeros(2))], lr=lr)
    topt = torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=lr)
    return opt, topt


@pytest.mark.parametrize("cls, kw", SCHEDULES, ids=lambda v: getattr(v, "__name__", str(v)))
def test_schedule_matches_torch(torch, cls, kw):
    opt, topt = _lr_pair(torch)
    sched, tsched = cls(opt, **kw), getattr(torch.optim.lr_scheduler, cls.__name__)(topt, **kw)
    assert sched.get_last_lr() == tsched.get_last_lr()[0] == 0.1
    lrs = []
    for _ in range(N_EPOCHS):
        topt.step()  # the optimizer's epoch, then the schedule
        sched.step()
        tsched.step()
        lrs.append(opt.lr)
        np.testing.assert_allclose(opt.lr, topt.param_groups[0]["lr"], rtol=1e-10, atol=1e-16, err_msg=f"epoch {sched.last_epoch}")
        assert sched.get_last_lr() == opt.lr and sched.last_epoch == tsched.last_epoch
    assert len(set(lrs)) > 5


def _metrics(kind):
    rng = np.random.default_rng(kind)
    values = 1.0 + 0.3 * np.sin(np.arange(N_EPOCHS) / 3.0) + 0.02 * rng.standard_normal(N_EPOCHS)
    values[::4] = values[1::4]  # exact repeats: ties are not improvements
    return values.tolist()


PLATEAUS = [
    (dict(patience=2, factor=0.5), 0),
    (dict(mode="max", patience=1, threshold=0.05, threshold_mode="abs", cooldown=2), 1),
    (dict(patience=0, factor=0.3, min_lr=0.004, eps=1e-4), 2),
    (dict(threshold_mode="abs", threshold=0.0, cooldown=1, patience=1, factor=0.7), 3),
    (dict(mode="max", threshold=0.01, patience=3), 4),
]


@pytest.mark.parametrize("kw, kind", PLATEAUS, ids=str)
def test_reduce_on_plateau_matches_torch(torch, kw, kind):
    opt, topt = _lr_pair(torch)
    sched, tsched = ReduceLROnPlateau(opt, **kw), torch.optim.lr_scheduler.ReduceLROnPlateau(topt, **kw)
    metrics = _metrics(kind)
    if kind == 3:
        metrics[10] = float("nan")  # counts as no improvement, as in torch
    lrs = []
    for k, metric in enumerate(metrics):
        topt.step()
        sched.step(np.float64(metric) if k % 2 else metric)
        tsched.step(metric)
        lrs.append(opt.lr)
        assert opt.lr == topt.param_groups[0]["lr"], f"epoch {k + 1}"
        assert (sched.best, sched.num_bad_epochs, sched.cooldown_counter) == (tsched.best, tsched.num_bad_epochs, tsched.cooldown_counter)
    assert len(set(lrs)) >= 3  # the case exercises reductions


def _run_schedule(sched, opt, metrics):
    out = []
    for m in metrics:
        opt.step()
        sched.step(m) if isinstance(sched, ReduceLROnPlateau) else sched.step()
        out.append(opt.lr)
    return out


@pytest.mark.parametrize("cls, kw", SCHEDULES + [(ReduceLROnPlateau, dict(patience=1, factor=0.5, cooldown=1))],
                         ids=lambda v: getattr(v, "__name__", str(v)))
def test_schedule_resume_is_exact(cls, kw):
    metrics = _metrics(5)
    params, _ = _problem(np.float64)
    pairs = _pairs(params)
    opt = Adam(pairs, lr=0.1)
    sched = cls(opt, **kw)
    _run_schedule(sched, opt, metrics[:10])
    opt_state, sched_state = opt.state_dict(), json.loads(json.dumps(sched.state_dict()))
    expected = _run_schedule(sched, opt, metrics[10:])

    opt2 = optimizer_from_state(opt_state, _pairs(params))
    sched2 = cls(opt2, **kw)
    sched2.load_state_dict(sched_state)
    assert sched2.last_epoch == 10 and opt2.lr == sched2.get_last_lr()
    assert _run_schedule(sched2, opt2, metrics[10:]) == expected
    assert len(set(expected)) > 1


def test_schedule_bad_inputs():
    opt = SGD([(np.zeros(2), np.zeros(2))], lr=0.1)
    cases = [
        (lambda: StepLR(opt, step_size=0), ValueError, "step_size: expected an integer >= 1, got 0"),
        (lambda: CosineAnnealingLR(opt, T_max=2.5), TypeError, "T_max: expected an integer, got float 2.5"),
        (lambda: ExponentialLR(opt, gamma=-0.5), ValueError, r"gamma: expected a finite number in \[0, inf\), got -0.5"),
        (lambda: ReduceLROnPlateau(opt, factor=1.0), ValueError, r"factor: expected a finite number in \[0, 1\), got 1.0"),
        (lambda: ReduceLROnPlateau(opt, mode="avg"), ValueError, "mode: expected 'min' or 'max', got 'avg'"),
        (lambda: ReduceLROnPlateau(opt, threshold_mode="pct"), ValueError, "threshold_mode: expected 'rel' or 'abs', got 'pct'"),
        (lambda: ReduceLROnPlateau(opt).step("0.5"), TypeError, "metric: expected a real number, got str"),
        (lambda: ReduceLROnPlateau(opt).step(np.ones(2)), TypeError, "metric: expected a real number, got ndarray"),
        (lambda: StepLR(object(), 2), TypeError, "optimizer: expected a pyrnn.optim Optimizer, got object"),
        (lambda: StepLR(opt, 2).load_state_dict(ExponentialLR(opt, 0.5).state_dict()), ValueError,
         r"state\['class'\]: expected 'StepLR', got 'ExponentialLR'"),
        (lambda: StepLR(opt, 2).load_state_dict({**StepLR(opt, 2).state_dict(), "last_epoch": -3}), ValueError,
         r"state\['last_epoch'\]: expected an integer >= 0, got -3"),
        (lambda: StepLR(opt, 2).load_state_dict({"class": "StepLR", "config": {"step_size": 2}}), ValueError,
         r"missing \['last_epoch', 'base_lr', 'last_lr'\]"),
    ]
    for make, exc, msg in cases:
        with pytest.raises(exc, match=msg):
            make()


# ----------------------------------------------------------------- clipping


def _grads(dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [(scale * rng.standard_normal(s)).astype(dtype) for s, scale in zip(SHAPES, GRAD_SCALES)]


def _torch_params(torch, grads):
    params = [torch.zeros(g.shape, dtype=torch.from_numpy(g).dtype, requires_grad=True) for g in grads]
    for p, g in zip(params, grads):
        p.grad = torch.tensor(g.copy())
    return params


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("ratio", [0.3, 1.0, 2.0, 0.0])  # max_norm / total norm; 1.0 is torch's epsilon zone
def test_clip_grad_norm_matches_torch(torch, dtype, ratio):
    grads = _grads(dtype)
    total = math.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads))
    max_norm = ratio * total
    tparams = _torch_params(torch, grads)
    ours = [g.copy() for g in grads]
    norm = clip_grad_norm_(ours, max_norm)
    tnorm = torch.nn.utils.clip_grad_norm_(tparams, max_norm)
    assert isinstance(norm, float)
    np.testing.assert_allclose(norm, tnorm.item(), **TOL[dtype])
    for g, tp in zip(ours, tparams):
        assert g.dtype == dtype
        np.testing.assert_allclose(g, tp.grad.numpy(), **TOL[dtype])
    new_total = math.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in ours))
    assert new_total <= max(max_norm, 0.0) * (1 + 1e-6) or ratio > 1


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_clip_grad_norm_returns_nonfinite_norm_without_scaling(bad):
    grads = _grads(np.float32)
    grads[1][2] = bad
    before = [g.copy() for g in grads]
    norm = clip_grad_norm_(grads, 1.0)
    assert (math.isnan(norm) if np.isnan(bad) else norm == math.inf)
    for g, b in zip(grads, before):
        np.testing.assert_array_equal(g, b)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_clip_grad_value_matches_torch(torch, dtype):
    grads = _grads(dtype, seed=4)
    grads[0][0, 0] = np.nan
    tparams = _torch_params(torch, grads)
    clip_grad_value_(grads, 0.8)
    torch.nn.utils.clip_grad_value_(tparams, 0.8)
    for g, tp in zip(grads, tparams):
        np.testing.assert_array_equal(g, tp.grad.numpy())
    assert np.nanmax(np.abs(np.concatenate([g.ravel() for g in grads]))) == dtype(0.8)
    assert np.isnan(grads[0][0, 0])


def test_clipping_bad_inputs_and_single_array():
    g = np.full(4, 3.0)
    assert clip_grad_norm_(g, 1.0) == 6.0
    np.testing.assert_allclose(g, np.full(4, 3.0 / (6.0 + 1e-6)), rtol=1e-15)
    cases = [
        (lambda: clip_grad_norm_([g], -1.0), ValueError, r"max_norm: expected a finite number in \[0, inf\), got -1.0"),
        (lambda: clip_grad_value_([g], float("inf")), ValueError, r"clip_value: expected a finite number in \[0, inf\), got inf"),
        (lambda: clip_grad_norm_({"w": g}, 1.0), TypeError, "grads: expected a list of gradient arrays, got dict"),
        (lambda: clip_grad_value_([g, np.ones(2, int)], 1.0), TypeError, r"grads\[1\]: expected a floating-point ndarray, got dtype int"),
    ]
    for make, exc, msg in cases:
        with pytest.raises(exc, match=msg):
            make()


def test_clip_grad_norm_epsilon_is_torchs(torch):
    # tiny gradients: max_norm = total_norm still scales by total / (total + 1e-6) ~ 1/2, as in torch
    grads = [np.full(4, 5e-7)]
    tparams = _torch_params(torch, grads)
    norm = clip_grad_norm_(grads, 1e-6)
    torch.nn.utils.clip_grad_norm_(tparams, 1e-6)
    assert norm == pytest.approx(1e-6, rel=1e-12)
    np.testing.assert_allclose(grads[0], tparams[0].grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(grads[0], np.full(4, 2.5e-7), rtol=1e-12)
