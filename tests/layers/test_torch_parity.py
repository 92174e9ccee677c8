"""Parity with PyTorch 2.13 (``batch_first=True``) on random configurations, on every backend:
outputs, final states, dx, dh0 (dc0) and every weight gradient."""

import numpy as np
import pytest

import pyrnn

from helpers import make_layer, random_problem, run

torch = pytest.importorskip("torch")

BACKENDS = pyrnn.available_backends()
N_CASES = 24
TOL = {np.float64: 1e-10, np.float32: 2e-5}


def _configs():
    rng = np.random.default_rng(2026)
    cells = ["rnn_tanh", "rnn_relu", "lstm", "gru"]
    for k in range(N_CASES):
        yield dict(
            cell=cells[k % 4],
            B=int(rng.integers(1, 6)),
            T=int(rng.integers(1, 9)),
            I=int(rng.integers(1, 10)),
            H=int(rng.integers(1, 10)),
            L=int(rng.integers(1, 4)),
            bi=bool(rng.integers(0, 2)),
            bias=bool(k % 5 != 4),
            dtype=[np.float64, np.float32][(k // 4) % 2],
        )


CONFIGS = list(_configs()) + [  # sizes where float32 rounding accumulates
    dict(cell="lstm", B=8, T=40, I=32, H=64, L=2, bi=True, bias=True, dtype=np.float32),
    dict(cell="gru", B=8, T=40, I=32, H=64, L=2, bi=True, bias=True, dtype=np.float32),
    dict(cell="rnn_tanh", B=8, T=40, I=32, H=64, L=2, bi=True, bias=True, dtype=np.float64),
]


def _torch_module(cfg):
    kw = dict(num_layers=cfg["L"], bidirectional=cfg["bi"], bias=cfg["bias"], batch_first=True)
    cell = cfg["cell"]
    if cell.startswith("rnn_"):
        mod = torch.nn.RNN(cfg["I"], cfg["H"], nonlinearity=cell[4:], **kw)
    else:
        mod = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](cfg["I"], cfg["H"], **kw)
    return mod.to(torch.float64 if cfg["dtype"] == np.float64 else torch.float32)


def _torch_run(mod, x, state, dy, dstate):
    tx = torch.tensor(x, requires_grad=True)
    parts = [torch.tensor(s, requires_grad=True) for s in (state if isinstance(state, tuple) else (state,))]
    y, sT = mod(tx, tuple(parts) if len(parts) == 2 else parts[0])
    sT = sT if isinstance(sT, tuple) else (sT,)
    loss = (y * torch.tensor(dy)).sum()
    for a, g in zip(sT, dstate if isinstance(dstate, tuple) else (dstate,)):
        loss = loss + (a * torch.tensor(g)).sum()
    mod.zero_grad()
    loss.backward()
    out = {"y": y.detach().numpy(), "dx": tx.grad.numpy()}
    for k, a in enumerate(sT):
        out[f"state_T[{k}]"] = a.detach().numpy()
    for k, p in enumerate(parts):
        out[f"dstate_0[{k}]"] = p.grad.numpy()
    for name, p in mod.named_parameters():
        out[f"grad {name}"] = p.grad.numpy()
    return out


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: "{cell}-B{B}T{T}I{I}H{H}L{L}{0}{1}-{2}".format(
    "-bi" if c["bi"] else "", "" if c["bias"] else "-nobias", np.dtype(c["dtype"]).name, **c))
def test_matches_torch(backend, cfg):
    torch.manual_seed(0)
    mod = _torch_module(cfg)
    layer = make_layer(cfg["cell"], cfg["I"], cfg["H"], cfg["L"], cfg["bi"], dtype=cfg["dtype"], bias=cfg["bias"])
    sd = {k: v.detach().numpy() for k, v in mod.state_dict().items()}
    assert sorted(sd) == sorted(layer.state_dict())
    layer.load_state_dict(sd)

    rng = np.random.default_rng(7)
    dt, LD, H = cfg["dtype"], cfg["L"] * (2 if cfg["bi"] else 1), cfg["H"]
    x = rng.standard_normal((cfg["B"], cfg["T"], cfg["I"])).astype(dt)
    dy = rng.standard_normal((cfg["B"], cfg["T"], (2 if cfg["bi"] else 1) * H)).astype(dt)
    shape = (LD, cfg["B"], H)
    state = rng.standard_normal(shape).astype(dt)
    dstate = rng.standard_normal(shape).astype(dt)
    if cfg["cell"] == "lstm":
        state = (state, rng.standard_normal(shape).astype(dt))
        dstate = (dstate, rng.standard_normal(shape).astype(dt))

    want = _torch_run(mod, x, state, dy, dstate)
    got = run(layer, x, state, dy, dstate, backend)
    assert sorted(got) == sorted(want)
    for name, w in want.items():
        scale = max(1.0, float(np.abs(w).max()))
        np.testing.assert_allclose(got[name], w, rtol=TOL[dt], atol=TOL[dt] * scale, err_msg=f"{backend} {name}")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cfg", CONFIGS[:8], ids=lambda c: f"{c['cell']}-B{c['B']}-T{c['T']}-L{c['L']}-bi{int(c['bi'])}")
def test_matches_torch_with_batch_first_false(backend, cfg):
    """Both libraries time-major (PyTorch's default layout): the same numbers."""
    rng = np.random.default_rng(7)
    base = make_layer(cfg["cell"], cfg["I"], cfg["H"], cfg["L"], cfg["bi"], cfg["dtype"], seed=3, bias=cfg["bias"])
    layer = type(base)(**dict(base.get_config(), batch_first=False))
    layer.load_state_dict(base.state_dict())
    mod = _torch_module(cfg)
    mod.batch_first = False
    mod.load_state_dict({k: torch.tensor(v) for k, v in layer.state_dict().items()})
    x, state, dy, dstate = random_problem(layer, cfg["B"], cfg["T"], rng)
    x, dy = (np.ascontiguousarray(a.swapaxes(0, 1)) for a in (x, dy))  # (T, B, ...)
    got = run(layer, x, state, dy, dstate, backend)
    want = _torch_run(mod, x, state, dy, dstate)
    assert sorted(got) == sorted(want) and got["y"].shape[:2] == (cfg["T"], cfg["B"])
    for name, w in want.items():
        scale = max(1.0, float(np.abs(w).max()))
        np.testing.assert_allclose(got[name], w, rtol=TOL[cfg["dtype"]], atol=TOL[cfg["dtype"]] * scale, err_msg=f"{backend} {name}")
