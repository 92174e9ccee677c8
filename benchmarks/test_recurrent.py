"""Every layer configuration of pyrnn.bench (the performance issue's table): one training step
(forward + backward) and one inference forward of a recurrent layer, and of the Conv1D layer, on
every pyrnn backend and on PyTorch when installed. Each result is checked against the NumPy
reference first.

Run: pytest benchmarks/ --benchmark-only   (add --benchmark-disable for a quick correctness smoke run)
"""

import pytest

import pyrnn
from pyrnn import bench

IMPLS = pyrnn.available_backends() + ["torch"]
TRAIN = pytest.mark.parametrize("train", [True, False], ids=["train", "infer"])


def _bench_step(benchmark, record_impl, case, impl, train):
    """Validate ``case`` on ``impl`` against the reference, then time its step (train) or forward."""
    if impl == "torch":
        pytest.importorskip("torch")
    fns = bench.step_functions(case, [impl])[impl]  # validated against the reference here
    benchmark.group = f"{case.label} {'train (fwd+bwd)' if train else 'inference'}"
    record_impl(impl)
    benchmark.pedantic(fns[0] if train else fns[1], rounds=5, iterations=1, warmup_rounds=1)


@TRAIN
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("config", bench.CONFIGS, ids=[c[0].replace(" ", "-") for c in bench.CONFIGS])
def test_recurrent_layer(benchmark, record_impl, request, config, impl, train):
    if request.config.getoption("benchmark_disable") and config not in bench.QUICK:
        pytest.skip("smoke run (--benchmark-disable): the small configurations check the benchmarked code")
    _bench_step(benchmark, record_impl, bench.Case(*config), impl, train)


@TRAIN
@pytest.mark.parametrize("impl", IMPLS)
def test_conv1d_layer(benchmark, record_impl, impl, train):
    _bench_step(benchmark, record_impl, bench.CONV, impl, train)
