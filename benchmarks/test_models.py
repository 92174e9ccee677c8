"""One training epoch of a small Conv1D + GRU forecaster (the user's model, ``pyrnn.bench.EPOCH``),
pyrnn against the same model in PyTorch (same weights, data, batches and Adam), timed in the same
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
