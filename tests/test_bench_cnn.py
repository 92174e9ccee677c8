"""pyrnn.bench_cnn, the image CNN rows of ``python -m pyrnn bench``, benchmarks/RESULTS.md and the
pytest-benchmark suite: the cases, their torch twins, the validation, the alternating timer, the
tables and the FMA limit. Nothing here asserts a time."""

import dataclasses
import re

import numpy as np
import pytest

import pyrnn
from pyrnn import bench_cnn

torch = pytest.importorskip("torch")

IMPLS = pyrnn.available_backends() + list(bench_cnn.TORCH_LAYOUTS)


# Legend: B = batch, H/W = height/width, C = channels. Tiny networks with every layer kind of the rows.
def _tiny_net():
    x = pyrnn.Input(name="image")
    h = pyrnn.ReLU()(pyrnn.BatchNorm2D(4)(pyrnn.Conv2D(3, 4, 3, padding=1, bias=False, seed=0)(x)))
    h = pyrnn.Add()(h, pyrnn.ConvTranspose2D(4, 4, 1, seed=1)(h))
    return pyrnn.Model(x, pyrnn.Dense(4, 5, seed=2)(pyrnn.GlobalAvgPool2D()(pyrnn.MaxPool2D(2)(h))))


def _torch_tiny_net(nn):
    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn = nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4)
            self.up, self.head = nn.ConvTranspose2d(4, 4, 1), nn.Linear(4, 5)

        def forward(self, x):
            h = torch.relu(self.bn(self.conv(x)))
            h = torch.nn.functional.max_pool2d(h + self.up(h), 2)
            return self.head(h.mean(dim=(2, 3)))

    return Tiny()


TINY = bench_cnn.CnnCase("tiny net B=3 6x6x3", (3, 6, 6, 3), _tiny_net, _torch_tiny_net)
TINY_CONV = bench_cnn.CnnCase("tiny conv B=2 5x5 3->4", (2, 5, 5, 3), lambda: pyrnn.Conv2D(3, 4, 3, padding=1, seed=0),
                              lambda nn: nn.Conv2d(3, 4, 3, padding=1), input_grad=True, pad=1)


def test_the_rows_are_the_issues():
    labels = [c.label for c in bench_cnn.CASES]
    assert labels == ["Conv2D B=64 28x28 32->64 3x3 pad 1", "LeNet-5 B=64 1x28x28 (zero-padded to 32x32)",
                      "ResNet basic block B=32 64ch 16x16", "VGG 32-64-128 B=32 3x32x32", "U-Net 16-32-64 B=8 1x64x64"]
    assert [c.x_shape for c in bench_cnn.CASES] == [(64, 28, 28, 32), (64, 32, 32, 1), (32, 16, 16, 64), (32, 32, 32, 3),
                                                    (8, 64, 64, 1)]
    assert bench_cnn.CONV2D.gflop_forward == pytest.approx(2 * 64 * 28 * 28 * 64 * 32 * 9 / 1e9)
    assert [c.input_grad for c in bench_cnn.CASES] == [True, False, True, False, False]
    block = bench_cnn.BLOCK.build()
    assert [type(layer).__name__ for layer in block.layers] == ["Conv2D", "BatchNorm2D", "ReLU", "Conv2D", "BatchNorm2D",
                                                                "Add", "ReLU"]
    assert "numba" in bench_cnn.default_impls(bench_cnn.CONV2D) and bench_cnn.default_impls(bench_cnn.VGG) == [
        pyrnn.get_backend(), "torch NCHW", "torch channels_last"]


def test_inputs_pad_the_images_and_fit_the_output():
    x, dy = TINY_CONV.inputs()
    assert x.shape == (2, 5, 5, 3) and dy.shape == (2, 5, 5, 4) and x.dtype == dy.dtype == np.float32
    assert not x[:, 0].any() and not x[:, -1].any() and not x[:, :, 0].any() and not x[:, :, -1].any() and x[:, 1:-1, 1:-1].all()
    x, dy = bench_cnn.LENET.inputs()
    assert x.shape == (64, 32, 32, 1) and dy.shape == (64, 10) and not x[:, :2].any() and x[:, 2:30, 2:30].all()


@pytest.mark.parametrize("case", [TINY, TINY_CONV, bench_cnn.LENET], ids=["net", "conv", "lenet"])
def test_step_functions_validate_every_implementation(case):
    steps = bench_cnn.step_functions(case, IMPLS)
    assert list(steps) == IMPLS
    x, dy = case.inputs()
    for impl, s in steps.items():
        y = bench_cnn._activation(s.infer())
        assert y.shape == dy.shape, impl
        assert bench_cnn._activation(s.train()).shape == dy.shape
        dx = s.dx()
        assert (dx is None) != case.input_grad and (dx is None or dx.shape == x.shape), impl
        assert s.grads().keys() == steps[IMPLS[0]].grads().keys()


def test_the_twins_hold_pyrnns_weights_and_buffers():
    model = TINY.build()
    mod, names = bench_cnn.torch_twin(TINY, model)
    assert names[(0, "weight")] == "conv.weight" and names[(1, "num_batches_tracked")] == "bn.num_batches_tracked"
    assert names[(3, "bias")] == "up.bias" and names[(7, "weight")] == "head.weight"
    for (i, k), n in names.items():
        np.testing.assert_array_equal(mod.state_dict()[n].numpy(), model.layers[i].state()[k])


def test_load_twin_refuses_unlike_layers_and_counts():
    with pytest.raises(ValueError, match=r"pyrnn layer 0 \(Conv2D\) faces torch module '0' \(Linear\): expected a Conv2d"):
        bench_cnn.load_twin(pyrnn.Conv2D(3, 4, 3), torch.nn.Sequential(torch.nn.Linear(3, 4)))
    with pytest.raises(ValueError, match=r"as many torch modules with weights as pyrnn layers with weights \(1\), got 2"):
        bench_cnn.load_twin(pyrnn.Conv2D(3, 4, 3), torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Conv2d(4, 4, 1)))


@pytest.mark.parametrize("what, match", [("bias", r"tiny conv B=2 5x5 3->4 (cpp|numba|numpy) infer y"),
                                         ("padding", r"tiny conv B=2 5x5 3->4: the torch network's output has shape \(2, 3, 3, 4\) .* pyrnn's \(2, 5, 5, 4\)")])
def test_a_torch_model_unlike_pyrnns_fails_validation(what, match):
    # the reference is the torch model in float64: pyrnn's default backend, checked too, fails against it
    def build(nn):
        mod = nn.Conv2d(3, 4, 3, padding=0 if what == "padding" else 1)
        if what == "bias":  # weights load, then the forward adds something else
            mod.register_forward_hook(lambda m, i, out: out + 1e-2)
        return mod

    wrong = dataclasses.replace(TINY_CONV, torch_build=build)
    with pytest.raises(AssertionError, match=match):
        bench_cnn.step_functions(wrong, ["torch NCHW"])


def test_a_wrong_gradient_fails_validation():
    def build(nn):  # the float64 reference is right, the float32 model's weight gradient 10 % off
        mod = nn.Conv2d(3, 4, 3, padding=1)
        mod.weight.register_hook(lambda g: 1.1 * g if g.dtype == torch.float32 else g)
        return mod

    with pytest.raises(AssertionError, match=r"torch NCHW train grad \(0, 'weight'\): \|\|got - want\|\|"):
        bench_cnn.step_functions(dataclasses.replace(TINY_CONV, torch_build=build), ["torch NCHW"])


def _timing(label, mode, impl, ms):
    return bench_cnn.Timing(label, mode, impl, [m / 1e3 for m in ms])


def test_format_table_takes_the_faster_torch_layout():
    rows = [_timing("r", "train", "cpp", [2, 2, 2, 4]), _timing("r", "train", "torch NCHW", [5, 5, 5]),
            _timing("r", "train", "torch channels_last", [3, 3, 3]), _timing("r", "infer", "cpp", [1, 1, 1]),
            _timing("r", "infer", "torch NCHW", [2, 2, 2]), _timing("r", "infer", "torch channels_last", [4, 4, 4]),
            _timing("e", "train", "torch NCHW", [9, 9, 9])]
    assert bench_cnn.format_table(rows).splitlines() == [
        "| workload | mode | cpp ms | torch NCHW ms | torch channels_last ms | cpp vs torch |",
        "|---|---|---|---|---|---|",
        "| r | train | 2.00 (2.00-2.50) | 5.00 (5.00-5.00) | 3.00 (3.00-3.00) | 1.50x (CL) |",
        "| r | infer | 1.00 (1.00-1.00) | 2.00 (2.00-2.00) | 4.00 (4.00-4.00) | 2.00x (NCHW) |",
        "| e | train | - | 9.00 (9.00-9.00) | - | - |",
    ]


def test_fma_limit_from_the_flags_and_the_clock():
    zen4 = {"vendor_id": "AuthenticAMD", "cpu family": "25", "model": "17", "flags": "sse2 avx2 fma avx512f", "cpu MHz": "2600.0",
            "model name": "AMD EPYC"}
    limit = bench_cnn.fma_limit(2, zen4)
    assert (limit.cores, limit.ghz, limit.per_cycle) == (min(2, bench_cnn.os.cpu_count()), 2.6, 32)
    assert limit.gflops == pytest.approx(limit.cores * 2.6 * 32)
    assert "AMD family 25 (Zen 3/4, AVX-512 as two 256-bit halves)" in limit.describe()
    assert bench_cnn.fma_flops_per_cycle({**zen4, "vendor_id": "GenuineIntel", "cpu family": "6"})[0] == 64
    assert bench_cnn.fma_flops_per_cycle({**zen4, "vendor_id": "GenuineIntel", "flags": "avx2 fma"})[0] == 32
    assert bench_cnn.fma_flops_per_cycle({**zen4, "flags": "sse2 avx"}) == (None, "no FMA in the CPU flags")
    assert bench_cnn.fma_limit(2, {**zen4, "cpu family": "23"}) == "FMA pipes unknown for AuthenticAMD family 23"
    assert bench_cnn.fma_limit(2, {k: v for k, v in zen4.items() if k != "cpu MHz"}).startswith("clock unknown")
    assert bench_cnn.cpu_description(zen4) == "AMD EPYC (AuthenticAMD family 25 model 17, avx512f, 2600.0 MHz)"


def test_fma_limit_takes_the_measured_clock_on_this_machine():
    """/proc/cpuinfo's 'cpu MHz' is the nominal clock under a hypervisor (rows ran at 107% of a limit
    computed from it): on this machine the limit takes the clock the cores run at, measured."""
    from pyrnn import _C

    limit = bench_cnn.fma_limit(1)
    if not isinstance(limit, bench_cnn.FmaLimit) or _C.measured_clock_ghz(1, 1) == 0:
        pytest.skip("no FMA limit, or no clock measurement, on this CPU")
    assert limit.clock.startswith("measured: 1 threads at once") and "/proc/cpuinfo says" in limit.clock
    assert 0.3 < limit.ghz < 8.0 and limit.gflops == pytest.approx(limit.ghz * limit.per_cycle)
    assert bench_cnn.fma_limit(1, measure=False).clock == "'cpu MHz' of /proc/cpuinfo"


def test_format_gflops_sets_the_rates_beside_the_peaks():
    limit = bench_cnn.FmaLimit(2, 2.5, 32, "test")  # 160 GFLOP/s
    rows = [bench_cnn.Timing("conv", "train", "cpp", [0.01], gflop=1.2), _timing("net", "train", "cpp", [3])]
    lines = bench_cnn.format_gflops(rows, 200.0, limit).splitlines()
    assert lines[0].endswith(": 200 GFLOP/s") and lines[1] == "- FMA-unit limit: " + limit.describe()
    assert lines[2] == "  (the sgemm exceeds it, so the cores ran at >= 3.12 GHz during it, above the reported clock)"
    assert lines[3:] == ["- conv train, cpp: 120 GFLOP/s (60% of the sgemm peak)"]
    assert bench_cnn.format_gflops([], 100.0, "no FMA").splitlines()[1] == "- FMA-unit limit: unknown (no FMA)"


def test_format_gflops_never_gives_more_than_100_percent_of_a_peak():
    """The issue: a row at 131% of a GEMM peak measured under other load (or a Winograd layer doing
    fewer multiplications than counted): the fastest block seen becomes the peak, and a note says so."""
    fast = bench_cnn.Timing("conv", "train", "cpp", [0.004, 0.005, 0.006], gflop=1.2)  # 240 GFLOP/s median, 300 best
    lines = bench_cnn.format_gflops([fast], 200.0, "test").splitlines()
    assert "above that sgemm peak" in lines[2] and "none exceeds 100%" in lines[2]
    assert lines[3] == "- conv train, cpp: 240 GFLOP/s (80% of the peak)"


def test_run_gives_a_timing_per_mode_and_implementation():
    rows = bench_cnn.run([TINY_CONV], ["numpy", "torch NCHW"], blocks=2, block_seconds=0)
    assert [(t.label, t.mode, t.impl, len(t.times)) for t in rows] == [
        (TINY_CONV.label, mode, impl, 2) for mode in ("infer", "train") for impl in ("numpy", "torch NCHW")]
    assert all(t.gflops is None and t.median > 0 for t in rows)


SMALL_EPOCH = bench_cnn.DigitsEpoch(n_train=40, batch=16)


def test_digits_epoch_data_and_batches():
    x, y = SMALL_EPOCH.data()
    assert x.shape == (40, 32, 32, 1) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1 and y.dtype == np.int64
    np.testing.assert_array_equal(x[:, ::4, ::4, 0], x[:, 3::4, 3::4, 0])  # 4x4 blocks
    np.testing.assert_array_equal(np.concatenate(SMALL_EPOCH.batches()), np.arange(40))
    assert [len(b) for b in SMALL_EPOCH.batches()] == [16, 16, 8]


def test_epochs_are_validated_and_train():
    fns = bench_cnn.epoch_functions(SMALL_EPOCH, ["numba", "torch channels_last"])
    assert list(fns) == ["numba", "torch channels_last"]
    rows = bench_cnn.run_epochs(SMALL_EPOCH, ["cpp", "torch NCHW"], blocks=1)
    assert re.fullmatch(r"\| LeNet-5 one epoch, digits \(N=40 32x32, batch 16, Adam\) \| train \| [\d.]+ \([\d.-]+\) \| "
                        r"[\d.]+ \([\d.-]+\) \| [\d.]+x \(NCHW\) \|", bench_cnn.format_table(rows).splitlines()[-1])


def test_an_epoch_with_another_learning_rate_fails_validation(monkeypatch):
    torch_epoch = bench_cnn._torch_epoch
    monkeypatch.setattr(bench_cnn, "_torch_epoch", lambda case, *a: torch_epoch(dataclasses.replace(case, lr=3 * case.lr), *a))
    with pytest.raises(AssertionError, match=r"LeNet-5 one epoch, digits \(N=40 .* numpy .* after one epoch"):
        bench_cnn.epoch_functions(SMALL_EPOCH, ["numpy"])


def test_layer_times_cover_every_layer_and_leave_the_model_as_it_was():
    model = TINY.build()
    x, dy = TINY.inputs()
    rows, total = bench_cnn.layer_times(model, x, dy, "numpy", calls=2)
    assert [r[0] for r in rows] == list(range(len(model.layers))) and rows[0][1].startswith("Conv2D(3, 4")
    assert all(f >= 0 and b >= 0 for _, _, f, b in rows) and sum(f + b for _, _, f, b in rows) <= total
    assert not any("graph_forward" in vars(layer) or "graph_backward" in vars(layer) for layer in model.layers)
    rows, _ = bench_cnn.layer_times(pyrnn.Conv2D(3, 4, 3, padding=1), *TINY_CONV.inputs(), "numpy", calls=1)
    assert len(rows) == 1 and rows[0][1].startswith("Conv2D")


@pytest.mark.parametrize("impl", ["numpy", "torch NCHW", "torch channels_last"])
def test_memory_step_runs_a_warmed_up_step(impl):
    step = bench_cnn.memory_step(impl, TINY)
    y = step()
    assert tuple(y.shape) == (3, 5)


def test_forward_bytes_counts_the_input_and_every_output():
    x = pyrnn.Input(name="x")
    model_case = dataclasses.replace(TINY_CONV, build=lambda: pyrnn.Model(x, pyrnn.ReLU()(pyrnn.Conv2D(3, 4, 3, padding=1, seed=0)(x))))
    assert bench_cnn.forward_bytes(model_case) == 4 * (2 * 5 * 5 * 3 + 2 * (2 * 5 * 5 * 4))
