"""Benchmarks of one layer and of one training epoch against PyTorch, shared by ``python -m pyrnn
bench``, ``benchmarks/write_results.py`` (which writes benchmarks/RESULTS.md) and the
pytest-benchmark suite in ``benchmarks/``.

Legend: T = time, B = batch, I = input, H = hidden, G = gates; for Conv1D C_in/C_out = input/output
channels, K = kernel size, U = T - K + 1 output steps (stride 1, no padding). A training step is
forward + backward of the layer (``dy`` given); inference is a forward under ``no_grad``. Every
result is checked against the NumPy reference before it is timed. The implementations of one row
run in interleaved blocks (:func:`pyrnn.bench_stats.alternate`: every round runs one block of each,
the order rotated), so they see the same load; the layer table times each pyrnn backend in a pair
with PyTorch alone (:func:`run`); each figure is the median over the blocks with its
min-max, each speed-up the median of the per-round ratios with their min-max, and a share of the
GEMM peak never exceeds 100 % (:func:`pyrnn.bench_stats.share_of_peak`).

FLOPs (GEMMs only, one layer, one direction): recurrent forward 2*T*B*G*H*(I + H); Conv1D forward
2*B*U*C_out*C_in*K; a training step three times the forward (forward; dX; dW, and for recurrent
layers dh and dW_hh).

PyTorch runs ``torch.nn.Conv1d`` on its own channels-first layout (B, C_in, T): the transposed
copies of x and dy are made once, outside the timing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .backends.contract import GATES
from .bench_stats import Timing, alternate, paired_ratios, share_of_peak, wait_for_blas_pool
from .threads import blas_one_thread

#: (label, cell, T, B, I, H): the recurrent configurations of the performance issue
CONFIGS = [
    ("LSTM T=50 B=1 I=16 H=32", "lstm", 50, 1, 16, 32),
    ("LSTM T=50 B=32 I=32 H=64", "lstm", 50, 32, 32, 64),
    ("GRU T=50 B=32 I=32 H=64", "gru", 50, 32, 32, 64),
    ("RNN T=100 B=64 I=128 H=256", "rnn_tanh", 100, 64, 128, 256),
    ("GRU T=100 B=64 I=128 H=256", "gru", 100, 64, 128, 256),
    ("LSTM T=100 B=64 I=128 H=256", "lstm", 100, 64, 128, 256),
    ("LSTM T=100 B=64 I=512 H=512", "lstm", 100, 64, 512, 512),
]
QUICK = CONFIGS[:3]

#: the implementations in table order: pyrnn's backends, then PyTorch
ORDER = ("cpp", "numba", "numpy", "torch")
#: the backends whose products run on a BLAS's own thread pool (NumPy's OpenBLAS, SciPy's behind Numba's np.dot)
POOL_BACKENDS = ("numba", "numpy")


@dataclass
class Case:
    """One recurrent layer (``cell`` as in :data:`pyrnn.backends.contract.GATES`), batch-first."""

    label: str
    cell: str
    T: int
    B: int
    I: int
    H: int
    channels_first = False  # PyTorch's layout is pyrnn's (B, T, features)

    @property
    def shapes(self):
        """Shapes of x and of dy."""
        return (self.B, self.T, self.I), (self.B, self.T, self.H)

    @property
    def gflop_forward(self):
        return 2 * self.T * self.B * GATES[self.cell] * self.H * (self.I + self.H) / 1e9

    def layer(self, seed=0):
        return make_layer(self.cell, self.I, self.H, seed=seed)

    def torch_module(self, layer):
        import torch

        cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}.get(self.cell, torch.nn.RNN)
        kw = {} if self.cell in ("lstm", "gru") else {"nonlinearity": self.cell[4:]}
        return _load_torch(cls(self.I, self.H, batch_first=True, **kw), layer)


@dataclass
class ConvCase:
    """One ``Conv1D`` layer, stride 1, no padding ("valid"); pyrnn is channels-last (B, T, C_in)."""

    label: str
    B: int
    T: int
    C_in: int
    C_out: int
    K: int
    channels_first = True  # torch.nn.Conv1d takes (B, C_in, T)

    @property
    def U(self):
        return self.T - self.K + 1

    @property
    def shapes(self):
        """Shapes of x and of dy."""
        return (self.B, self.T, self.C_in), (self.B, self.U, self.C_out)

    @property
    def gflop_forward(self):
        return 2 * self.B * self.U * self.C_out * self.C_in * self.K / 1e9

    def layer(self, seed=0):
        import pyrnn

        return pyrnn.Conv1D(self.C_in, self.C_out, self.K, seed=seed)

    def torch_module(self, layer):
        import torch

        return _load_torch(torch.nn.Conv1d(self.C_in, self.C_out, self.K), layer)


#: the Conv1D configuration of the performance issue (a few ms: in the quick run too)
CONV = ConvCase("Conv1D B=32 T=1000 Cin=32 Cout=64 K=5", B=32, T=1000, C_in=32, C_out=64, K=5)


def table_cases(quick=False):
    """The rows of the table: the recurrent configurations (:data:`QUICK` if ``quick``), then :data:`CONV`."""
    return [Case(*c) for c in (QUICK if quick else CONFIGS)] + [CONV]


def make_layer(cell, I, H, seed=0):
    import pyrnn

    if cell.startswith("rnn_"):
        return pyrnn.RNN(I, H, seed=seed, nonlinearity=cell[4:])
    return {"lstm": pyrnn.LSTM, "gru": pyrnn.GRU}[cell](I, H, seed=seed)


def make_inputs(case, seed=0):
    """Standard-normal float32 x and dy of ``case.shapes``."""
    rng = np.random.default_rng(seed)
    return tuple(rng.standard_normal(shape).astype(np.float32) for shape in case.shapes)


def _load_torch(mod, layer):
    """``mod`` with the pyrnn layer's weights (the names and layouts are PyTorch's)."""
    import torch

    mod.load_state_dict({k: torch.from_numpy(v) for k, v in layer.state_dict().items()})
    return mod


def _first(out):
    """y of a recurrent layer's (y, h) (and dx of its (dx, dh)); a Conv1D's output as is."""
    return out[0] if isinstance(out, tuple) else out


def _swap_layout(a, channels_first):
    """(B, T, C) <-> (B, C, T) as a contiguous copy when ``channels_first``, else ``a`` itself."""
    return np.ascontiguousarray(np.swapaxes(a, 1, 2)) if channels_first else a


def pyrnn_step(layer, x, dy, backend, train):
    """One training step (returns y, dx) or one inference forward (returns y, None)."""
    import pyrnn

    with pyrnn.use_backend(backend):
        if not train:
            with pyrnn.no_grad():
                return _first(layer.forward(x)), None
        layer.zero_grad()
        y = _first(layer.forward(x))
        return y, _first(layer.backward(dy))


def torch_step(mod, xt, dyt, train):
    """:func:`pyrnn_step` in PyTorch, on tensors in the module's layout; returns ndarrays."""
    import torch

    if not train:
        with torch.no_grad():
            return _first(mod(xt)).numpy(), None
    x = xt.detach().requires_grad_(True)
    mod.zero_grad()
    y = _first(mod(x))
    y.backward(dyt)
    return y.detach().numpy(), x.grad.numpy()


def step_functions(case, impls):
    """{impl: (train_fn, infer_fn)} for a :class:`Case` or :class:`ConvCase`, each validated
    against the NumPy reference first (y and dx, rtol = atol = 2e-4); torch is left out when
    it is not installed."""
    layer = case.layer()
    x, dy = make_inputs(case)
    out = {}
    with blas_one_thread():  # the reference's and the backends' products leave no OpenBLAS worker spinning after
        want = {train: pyrnn_step(layer, x, dy, "numpy", train) for train in (True, False)}
        for impl in impls:
            if impl == "torch":
                try:
                    import torch
                except ImportError:
                    continue
                mod = case.torch_module(layer)
                xt, dyt = (torch.from_numpy(_swap_layout(a, case.channels_first)) for a in (x, dy))
                fns = {train: (lambda train=train, mod=mod, xt=xt, dyt=dyt: torch_step(mod, xt, dyt, train)) for train in (True, False)}
            else:
                fns = {train: (lambda train=train, impl=impl: pyrnn_step(layer, x, dy, impl, train)) for train in (True, False)}
            layout = case.channels_first and impl == "torch"
            for train, fn in fns.items():
                for got, ref in zip(fn(), want[train]):
                    if ref is not None:
                        np.testing.assert_allclose(_swap_layout(got, layout), ref, rtol=2e-4, atol=2e-4,
                                                   err_msg=f"{case.label} {impl}")
            out[impl] = (fns[True], fns[False])
    return out


def run(quick=False, impls=None, blocks=7, block_seconds=0.04, cases=None, first_blocks=None):
    """[:class:`~pyrnn.bench_stats.Timing`] of every case (default :func:`table_cases`), training
    step then inference, on every implementation (default: pyrnn's backends and torch), timed in
    ``blocks`` interleaved blocks of ~``block_seconds`` (the first pyrnn implementation's pair with
    PyTorch, the default backend's, whose ratios the table leads with: ``first_blocks``, default ``blocks``).

    With PyTorch, each pyrnn implementation is timed in a pair with PyTorch alone, and its speed-up is
    over that pair's PyTorch (``Timing.reference``); the torch column is the first pair's. In one
    alternation of all four, the blocks after Numba's and NumPy's ran slower while those backends'
    thread pools still held the cores: PyTorch's LSTM H=512 inference took 204-216 ms there and 154 ms
    alternating with cpp alone (an AMD EPYC, 2 cores). For the same reason an alternation that follows
    one of a backend in :data:`POOL_BACKENDS` starts after :func:`~pyrnn.bench_stats.wait_for_blas_pool`:
    cpp's first RNN T=100 H=256 inference block after the NumPy backend's pair took 14.2 ms, the next
    fourteen 7.3-8.7 ms."""
    import pyrnn

    impls = impls or pyrnn.available_backends() + ["torch"]
    rows = []
    pool_woken = False  # the last alternation ran a backend on NumPy's BLAS pool (see wait_for_blas_pool)

    def timed(fns, n):
        nonlocal pool_woken
        if pool_woken:
            wait_for_blas_pool()
        pool_woken = any(impl in POOL_BACKENDS for impl in fns)
        return alternate(fns, n, block_seconds)

    for case in table_cases(quick) if cases is None else cases:
        fns = step_functions(case, impls)
        ours = [impl for impl in fns if impl != "torch"]
        for k, (mode, gflop) in enumerate((("train", 3 * case.gflop_forward), ("infer", case.gflop_forward))):
            if "torch" not in fns or not ours:
                times = timed({impl: pair[k] for impl, pair in fns.items()}, blocks)
                rows += [Timing(case.label, mode, impl, t, gflop) for impl, t in times.items()]
                continue
            pairs = []
            for impl in ours:
                n = first_blocks if impl == ours[0] and first_blocks else blocks
                times = timed({impl: fns[impl][k], "torch": fns["torch"][k]}, n)
                ref = Timing(case.label, mode, "torch", times["torch"], gflop)
                pairs.append(Timing(case.label, mode, impl, times[impl], gflop, reference=ref))
            rows += pairs + [pairs[0].reference]
    return rows


# --------------------------------------------------------- one epoch of a small model
@dataclass
class EpochCase:
    """One training epoch of a small Conv1D + GRU forecaster (the user's model): Adam (lr 1e-3),
    MSE, batches in order; pyrnn's ``fit`` against the same model, weights, data and batches in
    PyTorch.

    Legend: N = sequences, T = time, C = Conv1D channels (causal, kernel size K), H = GRU hidden.
    The data: windows of a noisy sine (one channel), the next value as the target.
    """

    N: int = 1024
    T: int = 50
    C: int = 16
    H: int = 32
    K: int = 5
    batch: int = 32
    clip_norm: float | None = None  # clip the gradients' global L2 norm before each step (both models)

    #: pyrnn layer index of each child of the PyTorch model (the head follows LastStep)
    TORCH_NAMES = {"conv": 0, "gru": 1, "head": 3}

    @property
    def label(self):
        return f"Conv1D+GRU one epoch (N={self.N}, T={self.T}, batch {self.batch}, Adam)"

    def data(self):
        """x (N, T, 1) and y (N, 1), float32."""
        rng = np.random.default_rng(0)
        t = np.arange(self.N + self.T + 1)
        series = (np.sin(2 * np.pi * t / 25) + 0.1 * rng.standard_normal(t.shape)).astype(np.float32)
        x = np.stack([series[i : i + self.T] for i in range(self.N)])[:, :, None]
        return x, series[self.T : self.T + self.N][:, None]

    def pyrnn_model(self):
        import pyrnn
        from pyrnn.layers import Conv1D, Dense, LastStep

        return pyrnn.Sequential([Conv1D(1, self.C, self.K, padding="causal", seed=0), pyrnn.GRU(self.C, self.H, seed=1),
                                 LastStep(), Dense(self.H, 1, seed=2)])

    def torch_model(self, model):
        """The same network in PyTorch with ``model``'s weights; x (B, T, 1) as in pyrnn."""
        import torch

        import pyrnn

        K = self.K

        class ConvGRU(torch.nn.Module):
            def __init__(self, C, H):
                super().__init__()
                self.conv = torch.nn.Conv1d(1, C, K)
                self.gru = torch.nn.GRU(C, H, batch_first=True)
                self.head = torch.nn.Linear(H, 1)

            def forward(self, x):  # x (B, T, 1); causal: pad K-1 on the left
                z = self.conv(torch.nn.functional.pad(x.transpose(1, 2), (K - 1, 0))).transpose(1, 2)
                return self.head(self.gru(z)[0][:, -1])

        mod = ConvGRU(self.C, self.H)
        mod.load_state_dict(pyrnn.interop.to_torch(model, names=self.TORCH_NAMES))
        return mod

    def batches(self):
        return [np.arange(i, min(i + self.batch, self.N)) for i in range(0, self.N, self.batch)]


#: the model of benchmarks/test_models.py
EPOCH = EpochCase()


@dataclass
class AddingCase(EpochCase):
    """The adding problem's whole ``fit`` step: LSTM(2 -> H) over T steps, ``LastStep``, ``Dense(H, 1)``,
    Adam (lr 1e-3), MSE, ``clip_norm=1.0``; one batch of N sequences, so one epoch is one step. Long
    sequences of few features (sensor series): the fixed costs of every call show.

    The data: x[:, :, 0] uniform in [0, 1), x[:, :, 1] marks two steps (one in each half); y the sum
    of the two marked values."""

    N: int = 50
    T: int = 200
    H: int = 64
    batch: int = 50
    clip_norm: float | None = 1.0

    TORCH_NAMES = {"lstm": 0, "head": 2}

    @property
    def label(self):
        return f"adding problem fit step (LSTM(2->{self.H}) T={self.T}, batch {self.batch}, Adam, clip_norm={self.clip_norm})"

    def data(self):
        rng = np.random.default_rng(0)
        x = np.zeros((self.N, self.T, 2), np.float32)
        x[:, :, 0] = rng.random((self.N, self.T))
        half = self.T // 2
        first, second = rng.integers(0, half, self.N), rng.integers(half, self.T, self.N)
        rows = np.arange(self.N)
        x[rows, first, 1] = x[rows, second, 1] = 1
        return x, (x[rows, first, 0] + x[rows, second, 0])[:, None].astype(np.float32)

    def pyrnn_model(self):
        import pyrnn
        from pyrnn.layers import Dense, LastStep

        return pyrnn.Sequential([pyrnn.LSTM(2, self.H, seed=1), LastStep(), Dense(self.H, 1, seed=2)])

    def torch_model(self, model):
        import torch

        import pyrnn

        class Adding(torch.nn.Module):
            def __init__(self, H):
                super().__init__()
                self.lstm = torch.nn.LSTM(2, H, batch_first=True)
                self.head = torch.nn.Linear(H, 1)

            def forward(self, x):
                return self.head(self.lstm(x)[0][:, -1])

        mod = Adding(self.H)
        mod.load_state_dict(pyrnn.interop.to_torch(model, names=self.TORCH_NAMES))
        return mod


#: the adding problem's fit step (benchmarks/test_models.py)
ADDING = AddingCase()


def _pyrnn_model_step(model, x, backend):
    """{"y": output, "<layer>.<param>": gradient} of one forward + backward of sum(y)."""
    import pyrnn

    with pyrnn.use_backend(backend):
        model.zero_grad()
        y = model.forward(x)
        model.backward(np.ones_like(y))
    grads = {f"{i}.{k}": g.copy() for i, layer in enumerate(model.layers) for k, g in layer.grads.items()}
    return {"y": y, **grads}


def _torch_model_step(case, mod, x):
    """:func:`_pyrnn_model_step` in PyTorch, keyed by pyrnn's names."""
    import torch

    mod.zero_grad()
    y = mod(torch.from_numpy(x))
    y.sum().backward()
    grads = {}
    for name, p in mod.named_parameters():
        child, _, rest = name.partition(".")
        grads[f"{case.TORCH_NAMES[child]}.{rest}"] = p.grad.numpy().copy()
    return {"y": y.detach().numpy(), **grads}


def epoch_functions(case, impls):
    """{impl: epoch_fn} (one call = one epoch), each model validated against the NumPy reference
    first: output and every weight gradient of one batch (rtol 2e-4, atol 2e-4); torch is left
    out when it is not installed."""
    x, y = case.data()
    xb = x[: case.batch]
    want = _pyrnn_model_step(case.pyrnn_model(), xb, "numpy")
    out = {}
    for impl in impls:
        model = case.pyrnn_model()
        if impl == "torch":
            try:
                import torch
            except ImportError:
                continue
            mod = case.torch_model(model)
            got = _torch_model_step(case, mod, xb)
            out[impl] = _torch_epoch(case, mod, torch.from_numpy(x), torch.from_numpy(y))
        else:
            got = _pyrnn_model_step(model, xb, impl)
            out[impl] = _pyrnn_epoch(case, model, x, y, impl)
        assert got.keys() == want.keys(), f"{case.label} {impl}: parameters {sorted(got)}, expected {sorted(want)}"
        for name, ref in want.items():
            np.testing.assert_allclose(got[name], ref, rtol=2e-4, atol=2e-4, err_msg=f"{case.label} {impl} {name}")
    return out


def _pyrnn_epoch(case, model, x, y, backend):
    import pyrnn

    model.compile("adam", "mse", lr=1e-3, clip_norm=case.clip_norm)

    def epoch():
        with pyrnn.use_backend(backend):
            model.fit(x, y, epochs=1, batch_size=case.batch, shuffle=False, verbose=0)

    return epoch


def _torch_epoch(case, mod, xt, yt):
    import torch

    opt = torch.optim.Adam(mod.parameters(), lr=1e-3)

    def epoch():
        for idx in case.batches():
            opt.zero_grad()
            torch.nn.functional.mse_loss(mod(xt[idx]), yt[idx]).backward()
            if case.clip_norm is not None:
                torch.nn.utils.clip_grad_norm_(mod.parameters(), case.clip_norm)
            opt.step()

    return epoch


def run_epochs(impls=None, case=EPOCH, blocks=3, block_seconds=0):
    """Rows as :func:`run`'s (mode "train", no GFLOP/s) of one epoch on every implementation,
    in ``blocks`` interleaved blocks of about ``block_seconds`` each (at least one epoch)."""
    import pyrnn

    impls = impls or pyrnn.available_backends() + ["torch"]
    times = alternate(epoch_functions(case, impls), blocks, block_seconds=block_seconds)
    return [Timing(case.label, "train", impl, t) for impl, t in times.items()]


# ------------------------------------------------------------------------ the table
def gemm_peak(sizes=(1024, 2048), blocks=5):
    """The float32 GEMM peak of this machine, in GFLOP/s: the best block (not the median: a peak
    measured while the machine was busy is no peak) over ``sizes`` of NumPy's matmul (its
    OpenBLAS, every thread), n x n times n x n."""
    rng = np.random.default_rng(0)
    fns, flops = {}, {}
    for n in sizes:
        a, b = (rng.standard_normal((n, n)).astype(np.float32) for _ in range(2))
        out = np.empty_like(a)
        fns[n] = lambda a=a, b=b, out=out: np.matmul(a, b, out=out)
        flops[n] = 2 * n**3 / 1e9
    times = alternate(fns, blocks, block_seconds=0.02)
    return max(flops[n] / min(t) for n, t in times.items())


def _cell(t):
    """``median (min-max)`` in ms, and the GFLOP/s at the median when the row counts FLOPs."""
    lo, hi = t.range
    text = f"{t.median * 1e3:.2f} ({lo * 1e3:.2f}-{hi * 1e3:.2f})"
    return text if t.gflops is None else f"{text} {t.gflops:.1f} GF/s"


def _ratio(reference, t):
    """The per-round speed-ups over ``reference``: ``median (min-max)``."""
    r = paired_ratios(reference, t)
    return f"{np.median(r):.2f}x ({min(r):.2f}-{max(r):.2f})"


def fastest_rate(rows):
    """The GFLOP/s of the fastest block of any row that counts FLOPs (0.0 if none does)."""
    return max([t.best_gflops for t in rows if t.gflop is not None], default=0.0)


def format_table(rows, peak=None, limit=None):
    """A Markdown table: one line per config and mode, each implementation's median ms (min-max
    over the blocks) and GFLOP/s when the row counts FLOPs, the speed-up over PyTorch (median of
    the per-round ratios, min-max; over the PyTorch timed with it where :func:`run` paired them), and
    with ``peak`` (GFLOP/s, :func:`gemm_peak`) the first
    implementation's share of it at its median, at most 100 % (see
    :func:`pyrnn.bench_stats.share_of_peak`; the fastest block of any row counts as the peak if faster);
    with ``limit`` (GFLOP/s, the FMA units' physical limit: :func:`pyrnn.bench_cnn.fma_limit`) its share
    of that too (turbo clocks can pass the nominal clock the limit is computed at)."""
    impls = sorted({t.impl for t in rows}, key=lambda s: ORDER.index(s) if s in ORDER else len(ORDER))
    others = [i for i in impls if i != "torch"]
    head = "| config | mode | " + " | ".join(f"{i} ms" for i in impls) + " | " + \
        " | ".join(f"{i} vs torch" for i in others) + " |" + (f" {impls[0]} % of GEMM peak |" if peak else "") + \
        (f" {impls[0]} % of FMA limit |" if limit else "")
    lines = [head, "|" + "---|" * (2 + len(impls) + len(others) + (1 if peak else 0) + (1 if limit else 0))]
    keyed = {(t.label, t.mode, t.impl): t for t in rows}
    best = fastest_rate(rows)
    for label, mode in dict.fromkeys((t.label, t.mode) for t in rows):
        cells = ["-" if (label, mode, i) not in keyed else _cell(keyed[label, mode, i]) for i in impls]
        ref = keyed.get((label, mode, "torch"))
        ratios = []
        for i in others:
            t = keyed.get((label, mode, i))
            base = None if t is None else t.reference or ref
            ratios.append("-" if base is None else _ratio(base, t))
        share = ""
        if peak:
            t = keyed.get((label, mode, impls[0]))
            share = " - |" if t is None or t.gflops is None else f" {share_of_peak(t.gflops, peak, best)[0]:.0f}% |"
        if limit:
            t = keyed.get((label, mode, impls[0]))
            share += " - |" if t is None or t.gflops is None else f" {100 * t.gflops / limit:.0f}% |"
        lines.append(f"| {label} | {mode} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |" + share)
    return "\n".join(lines)
