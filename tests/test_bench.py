"""pyrnn.bench, the code behind ``python -m pyrnn bench``, benchmarks/RESULTS.md and the
pytest-benchmark suite: the cases, their validation against the NumPy reference and the table.
Nothing here asserts a time."""

import dataclasses
import re

import numpy as np
import pytest

import pyrnn
from pyrnn import bench
from pyrnn.bench_stats import Timing

# Legend: B = batch, T = time, C_in/C_out = channels, K = kernel size, U = T - K + 1.
TINY_CONV = bench.ConvCase("Conv1D tiny", B=2, T=12, C_in=3, C_out=4, K=3)
TINY_GRU = bench.Case("GRU tiny", "gru", 6, 2, 3, 5)
TINY_EPOCH = bench.EpochCase(N=40, T=12, C=4, H=6, batch=16)
IMPLS = pyrnn.available_backends()


def test_table_has_the_conv1d_row_in_quick_and_full_mode():
    for quick in (True, False):
        labels = [c.label for c in bench.table_cases(quick)]
        assert labels[-1] == "Conv1D B=32 T=1000 Cin=32 Cout=64 K=5"
        assert len(labels) == len(bench.QUICK if quick else bench.CONFIGS) + 1


def test_conv1d_case_shapes_and_flops():
    c = bench.CONV
    assert (c.B, c.T, c.C_in, c.C_out, c.K, c.U) == (32, 1000, 32, 64, 5, 996)
    assert c.shapes == ((32, 1000, 32), (32, 996, 64))
    assert c.gflop_forward == pytest.approx(2 * 32 * 996 * 64 * 32 * 5 / 1e9)
    layer = c.layer()
    assert layer.params["weight"].shape == (64, 32, 5) and layer.padding == 0 and layer.stride == 1


@pytest.mark.parametrize("case", [TINY_CONV, TINY_GRU], ids=["conv", "gru"])
def test_step_functions_are_validated_and_return_the_step(case):
    fns = bench.step_functions(case, IMPLS)
    assert list(fns) == IMPLS
    x_shape, y_shape = case.shapes
    for train_fn, infer_fn in fns.values():
        y, dx = train_fn()
        assert y.shape == y_shape and dx.shape == x_shape
        y, none = infer_fn()
        assert y.shape == y_shape and none is None


def test_torch_steps_are_validated_in_torch_layout():
    pytest.importorskip("torch")
    for case in (TINY_CONV, TINY_GRU):
        train_fn, infer_fn = bench.step_functions(case, ["torch"])["torch"]
        y, dx = train_fn()
        x_shape, y_shape = case.shapes
        swap = (lambda s: (s[0], s[2], s[1])) if case.channels_first else (lambda s: s)
        assert y.shape == swap(y_shape) and dx.shape == swap(x_shape)


def test_a_wrong_torch_module_fails_validation():
    pytest.importorskip("torch")

    class Wrong(bench.ConvCase):
        def torch_module(self, layer):
            mod = super().torch_module(layer)
            mod.bias.data += 1e-2
            return mod

    with pytest.raises(AssertionError, match="Conv1D tiny torch"):
        bench.step_functions(Wrong(**dataclasses.asdict(TINY_CONV)), ["torch"])


def test_run_rows_and_table():
    rows = bench.run(impls=["numpy"], blocks=3, block_seconds=0, cases=[TINY_GRU, TINY_CONV])
    assert [(t.label, t.mode, t.impl, len(t.times)) for t in rows] == [
        (label, mode, "numpy", 3) for label in ("GRU tiny", "Conv1D tiny") for mode in ("train", "infer")
    ]
    assert all(t.median > 0 and t.gflops > 0 for t in rows)
    lines = bench.format_table(rows).splitlines()
    assert lines[0] == "| config | mode | numpy ms | numpy vs torch |"
    assert len(lines) == 2 + 4 and lines[-1].startswith("| Conv1D tiny | infer | ")
    assert lines[-1].endswith(" | - |")  # no torch row: no ratio


def _t(impl, ms, gflop=None, mode="train", reference=None):
    return Timing("m", mode, impl, [m / 1e3 for m in ms], gflop, reference)


def test_format_table_gives_medians_ranges_and_per_round_ratios_against_torch():
    rows = [_t("torch", [4, 4, 8]), _t("numpy", [8, 8, 8]), _t("cpp", [2, 1, 2])]
    assert bench.format_table(rows).splitlines() == [
        "| config | mode | cpp ms | numpy ms | torch ms | cpp vs torch | numpy vs torch |",
        "|---|---|---|---|---|---|---|",
        "| m | train | 2.00 (1.00-2.00) | 8.00 (8.00-8.00) | 4.00 (4.00-8.00) | 4.00x (2.00-4.00) | 0.50x (0.50-1.00) |",
    ]


def test_format_table_takes_each_ratio_over_the_torch_timed_with_it():
    """run() pairs every pyrnn backend with PyTorch alone: the speed-up is over that pair's PyTorch, the
    torch column is the row's own."""
    rows = [_t("cpp", [2, 2, 2], reference=_t("torch", [8, 8, 8])), _t("numpy", [8, 8, 8], reference=_t("torch", [4, 2, 4])),
            _t("torch", [6, 6, 6])]
    assert bench.format_table(rows).splitlines()[-1] == (
        "| m | train | 2.00 (2.00-2.00) | 8.00 (8.00-8.00) | 6.00 (6.00-6.00) | 4.00x (4.00-4.00) | 0.50x (0.25-0.50) |")


def test_run_pairs_each_backend_with_torch_alone(monkeypatch):
    """Each backend alternates with PyTorch alone, and the torch column is the first pair's PyTorch."""
    calls = []

    def fake_alternate(fns, blocks, block_seconds):
        calls.append(sorted(fns))
        return {name: [0.001 * len(calls)] * blocks for name in fns}

    fn = (lambda: None, lambda: None)
    monkeypatch.setattr(bench, "step_functions", lambda case, impls: {"cpp": fn, "numpy": fn, "torch": fn})
    monkeypatch.setattr(bench, "alternate", fake_alternate)
    rows = bench.run(blocks=2, cases=[TINY_GRU], first_blocks=3)
    assert calls == [["cpp", "torch"], ["numpy", "torch"]] * 2  # train, then inference
    train = [t for t in rows if t.mode == "train"]
    assert [t.impl for t in train] == ["cpp", "numpy", "torch"]
    # the first backend's pair (the default's) in first_blocks rounds, the others in blocks
    assert train[0].reference.times == [0.001] * 3 and train[1].reference.times == [0.002] * 2
    assert len(train[0].times) == 3 and len(train[1].times) == 2
    assert train[2] is train[0].reference


def test_run_waits_for_the_blas_pool_after_a_pool_backends_pair(monkeypatch):
    """An alternation right after one of the NumPy or Numba backend starts once OpenBLAS' workers
    sleep (they spin ~0.1 s after a product and would share the cores with the next blocks); one
    after cpp's pair starts at once."""
    events = []
    fn = (lambda: None, lambda: None)
    monkeypatch.setattr(bench, "step_functions", lambda case, impls: {"cpp": fn, "numpy": fn, "torch": fn})
    monkeypatch.setattr(bench, "alternate", lambda fns, blocks, block_seconds: events.append(sorted(fns)) or
                        {name: [0.001] * blocks for name in fns})
    monkeypatch.setattr(bench, "wait_for_blas_pool", lambda: events.append("wait"))
    bench.run(blocks=2, cases=[TINY_GRU, TINY_GRU])
    pair, numpy_pair = ["cpp", "torch"], ["numpy", "torch"]
    assert events == [pair, numpy_pair, "wait", pair, numpy_pair] + ["wait", pair, numpy_pair, "wait", pair, numpy_pair]


def test_step_functions_validate_with_the_blas_on_one_thread(monkeypatch):
    """The NumPy reference behind the validation runs its products on one thread: no OpenBLAS worker
    is left spinning into the first timed blocks."""
    threads = []
    real = bench.pyrnn_step

    def spy(layer, x, dy, impl, train):
        from pyrnn.threads import _numpy_openblas_threads

        lib = _numpy_openblas_threads()
        threads.append(None if lib is None else lib[0]())
        return real(layer, x, dy, impl, train)

    monkeypatch.setattr(bench, "pyrnn_step", spy)
    bench.step_functions(TINY_GRU, ["numpy"])
    if threads[0] is None:
        pytest.skip("NumPy's BLAS is not an OpenBLAS whose thread count pyrnn can read")
    assert threads and set(threads) == {1}


def test_format_table_gives_the_first_impls_share_of_the_gemm_peak_never_above_100():
    rows = [_t("torch", [4, 4, 4], 0.2), _t("cpp", [2, 2, 2], 0.2), _t("cpp", [1, 1, 1], mode="infer")]
    lines = bench.format_table(rows, peak=200.0).splitlines()
    assert lines[0].endswith("| cpp vs torch | cpp % of GEMM peak |")
    assert lines[2] == "| m | train | 2.00 (2.00-2.00) 100.0 GF/s | 4.00 (4.00-4.00) 50.0 GF/s | 2.00x (2.00-2.00) | 50% |"
    assert lines[3].endswith("| - | - |")  # no GFLOP/s, no torch row
    # the 131 %: a peak measured under heavier load than the row; the row's best block is the peak then
    fast = [_t("cpp", [0.8, 0.76, 0.9], 0.2), _t("torch", [1, 1, 1], 0.2)]
    share = bench.format_table(fast, peak=200.0).splitlines()[2].rsplit("|", 2)[1]
    assert share.strip() == "95%"  # 250 GFLOP/s median against the 263 of its fastest block
    assert bench.fastest_rate(fast) == pytest.approx(0.2 / 0.76e-3)  # the rate the shares were of
    assert bench.fastest_rate(rows) == pytest.approx(100.0) and bench.fastest_rate([rows[2]]) == 0.0


def test_format_table_gives_the_first_impls_share_of_the_fma_limit():
    rows = [_t("torch", [4, 4, 4], 0.2), _t("cpp", [2, 2, 2], 0.2), _t("cpp", [1, 1, 1], mode="infer")]
    lines = bench.format_table(rows, peak=200.0, limit=400.0).splitlines()
    assert lines[0].endswith("| cpp % of GEMM peak | cpp % of FMA limit |") and lines[1].count("---") == 7
    assert lines[2].endswith("| 2.00x (2.00-2.00) | 50% | 25% |")  # 100 GFLOP/s of 200 and of 400
    assert lines[3].endswith("| - | - | - |")
    assert bench.format_table(rows, limit=400.0).splitlines()[2].endswith("| 2.00x (2.00-2.00) | 25% |")


def test_gemm_peak_is_a_positive_rate():
    assert bench.gemm_peak(sizes=(64,), blocks=2) > 0


def test_epoch_functions_train_every_backend_after_validation():
    fns = bench.epoch_functions(TINY_EPOCH, IMPLS + ["torch"])
    assert set(IMPLS) <= set(fns)
    for fn in fns.values():
        fn()  # one epoch
    rows = bench.run_epochs(["numpy"], case=TINY_EPOCH, blocks=1)
    assert re.fullmatch(r"\| Conv1D\+GRU one epoch \(N=40, T=12, batch 16, Adam\) \| train \| \d+\.\d\d \([\d.]+-[\d.]+\) \| - \|",
                        bench.format_table(rows).splitlines()[-1])


def test_epoch_batches_cover_the_data_once():
    idx = np.concatenate(TINY_EPOCH.batches())
    np.testing.assert_array_equal(idx, np.arange(TINY_EPOCH.N))


TINY_ADDING = bench.AddingCase(N=6, T=10, H=5, batch=6)


def test_adding_case_data_is_the_adding_problem():
    x, y = TINY_ADDING.data()
    assert x.shape == (6, 10, 2) and y.shape == (6, 1) and x.dtype == y.dtype == np.float32
    marks = x[:, :, 1]
    assert (marks.sum(axis=1) == 2).all() and (marks[:, :5].sum(axis=1) == 1).all()  # one mark in each half
    np.testing.assert_allclose(y[:, 0], (x[:, :, 0] * marks).sum(axis=1), rtol=1e-6)
    assert len(TINY_ADDING.batches()) == 1  # one batch: an epoch is one fit step


def test_adding_fit_step_is_validated_against_torch_with_clipping():
    """epoch_functions checks pyrnn's and torch's models against the reference first; then one step each,
    clipped at clip_norm, leaves the two models' weights equal."""
    torch = pytest.importorskip("torch")
    case = bench.AddingCase(N=6, T=10, H=5, batch=6, clip_norm=0.01)  # tiny: the clipping acts
    model = case.pyrnn_model()
    mod = case.torch_model(model)
    x, y = case.data()
    bench._pyrnn_epoch(case, model, x, y, IMPLS[0])()
    bench._torch_epoch(case, mod, torch.from_numpy(x), torch.from_numpy(y))()
    theirs = {k: v.detach().numpy() for k, v in mod.state_dict().items()}
    ours = pyrnn.interop.to_torch(model, names=case.TORCH_NAMES)
    for k, v in ours.items():
        np.testing.assert_allclose(v.numpy(), theirs[k], rtol=1e-4, atol=1e-6, err_msg=k)
    assert set(bench.epoch_functions(case, IMPLS + ["torch"])) == set(IMPLS + ["torch"])
