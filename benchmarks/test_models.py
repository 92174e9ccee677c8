"""One training epoch of a small Conv1D + GRU forecaster (the user's model, ``pyrnn.bench.EPOCH``) and
the adding problem's whole ``fit`` step (LSTM(2 -> 64) over T = 200, ``pyrnn.bench.ADDING``), pyrnn
against the same model in PyTorch (same weights, data, batches, Adam and clipping), timed in the same
run. Each model's output and weight gradients are checked against the NumPy reference first.

Run: pytest benchmarks/test_models.py --benchmark-only
"""

import pytest

import pyrnn
from pyrnn import bench


@pytest.mark.parametrize("impl", pyrnn.available_backends() + ["torch"])
def test_conv_gru_epoch(benchmark, record_impl, impl):
    if impl == "torch":
        pytest.importorskip("torch")
    epoch = bench.epoch_functions(bench.EPOCH, [impl])[impl]  # validated against the reference here
    benchmark.group = bench.EPOCH.label
    record_impl(impl)
    benchmark.pedantic(epoch, rounds=3, iterations=1, warmup_rounds=1)


@pytest.mark.parametrize("impl", pyrnn.available_backends() + ["torch"])
def test_adding_problem_fit_step(benchmark, record_impl, impl):
    if impl == "torch":
        pytest.importorskip("torch")
    step = bench.epoch_functions(bench.ADDING, [impl])[impl]  # one batch: an epoch is one fit step
    benchmark.group = bench.ADDING.label
    record_impl(impl)
    benchmark.pedantic(step, rounds=10, iterations=1, warmup_rounds=2)
