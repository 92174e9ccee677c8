"""The image CNN rows of pyrnn.bench_cnn (the image CNN issue's table): the Conv2D layer, LeNet-5, a
ResNet basic block, a small VGG and a U-Net, one inference forward and one training step each, and
one epoch of LeNet on the bundled digits; pyrnn's default backend (and Numba on the Conv2D layer)
against PyTorch on NCHW and on channels_last tensors. Every implementation is checked against the
PyTorch model in float64 first (once per row: the validated functions are shared by its tests).

Run: pytest benchmarks/test_cnn.py --benchmark-only   (--benchmark-disable: validate, call each once)
"""

import functools

import pytest

from pyrnn import bench_cnn

pytest.importorskip("torch")
TRAIN = pytest.mark.parametrize("train", [True, False], ids=["train", "infer"])
ROWS = [(case, impl) for case in bench_cnn.CASES for impl in bench_cnn.default_impls(case)]


@functools.lru_cache(maxsize=1)  # one row's models at a time (the rows run in order)
def _steps(case):
    return bench_cnn.step_functions(case, bench_cnn.default_impls(case))  # validated here


@TRAIN
@pytest.mark.parametrize("case, impl", ROWS, ids=[f"{c.label.split(' B=')[0].replace(' ', '-')}-{i.replace(' ', '-')}" for c, i in ROWS])
def test_cnn_row(benchmark, record_impl, case, impl, train):
    steps = _steps(case)[impl]
    benchmark.group = f"{case.label} {'train (fwd+bwd)' if train else 'inference'}"
    record_impl(impl)
    benchmark.pedantic(steps.train if train else steps.infer, rounds=5, iterations=1, warmup_rounds=1)


@functools.lru_cache(maxsize=1)
def _epochs(case):
    return bench_cnn.epoch_functions(case, bench_cnn.default_impls(bench_cnn.LENET))  # validated here


@pytest.mark.parametrize("impl", bench_cnn.default_impls(bench_cnn.LENET))
def test_digits_epoch(benchmark, record_impl, request, impl):
    # the smoke run (--benchmark-disable) checks the same code on the first 160 images (5 batches)
    case = bench_cnn.DigitsEpoch(n_train=160) if request.config.getoption("benchmark_disable") else bench_cnn.DIGITS
    benchmark.group = case.label
    record_impl(impl)
    benchmark.pedantic(_epochs(case)[impl], rounds=3, iterations=1, warmup_rounds=1)
