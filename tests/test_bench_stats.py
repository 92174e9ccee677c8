"""The statistics behind the benchmark tables (issue 13, point 10): interleaving, medians and spreads,
paired ratios, shares of a peak capped at 100 %, and the busy-machine warnings. No time is asserted:
the timings are made up or counted."""

import pytest

from pyrnn import bench_stats
from pyrnn.bench_stats import Timing


def test_alternate_rotates_the_order_and_times_every_block():
    calls = []
    fns = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    times = bench_stats.alternate(fns, blocks=4, block_seconds=0, warmup=1)
    assert {k: len(v) for k, v in times.items()} == {"a": 4, "b": 4, "c": 4} and all(t >= 0 for v in times.values() for t in v)
    rounds = calls[6:]  # after one warm-up and one calibration call each
    assert rounds == list("abc" "bca" "cab" "abc")


def test_timing_median_quartiles_range_spread_and_rates():
    t = Timing("r", "train", "cpp", [0.004, 0.001, 0.002, 0.003, 0.010], gflop=0.3)
    assert t.median == pytest.approx(0.003)
    assert t.quartiles == pytest.approx((0.002, 0.004))  # numpy's linear interpolation
    assert t.range == (0.001, 0.010)
    assert t.spread == pytest.approx((0.004 - 0.002) / 0.003)
    assert t.gflops == pytest.approx(100.0) and t.best_gflops == pytest.approx(300.0)
    assert Timing("r", "train", "cpp", [0.5]).gflops is None and Timing("r", "train", "cpp", [0.5]).spread == 0


def test_paired_ratios_pair_the_blocks_of_one_round():
    torch = Timing("r", "infer", "torch", [2.0, 4.0, 6.0])
    ours = Timing("r", "infer", "cpp", [1.0, 4.0, 2.0])
    assert bench_stats.paired_ratios(torch, ours) == [2.0, 1.0, 3.0]


@pytest.mark.parametrize("rate, peak, best, want", [(50.0, 200.0, 100.0, (25.0, 200.0)),
                                                    (262.0, 200.0, 262.0, (100.0, 262.0)),  # the 131 %
                                                    (240.0, 200.0, 300.0, (80.0, 300.0))])
def test_share_of_peak_never_exceeds_100_percent(rate, peak, best, want):
    share, used = bench_stats.share_of_peak(rate, peak, best)
    assert (share, used) == pytest.approx(want) and share <= 100


def test_machine_warnings_on_spread_and_load():
    quiet = Timing("r", "train", "cpp", [1.0, 1.01, 0.99, 1.0])
    noisy = Timing("LSTM B=32", "infer", "torch", [0.02, 1.0, 0.5, 3.0])  # the 0.02x ... 153x kind of run
    assert bench_stats.machine_warnings([quiet], load=0.5, cores=2) == []
    lines = bench_stats.machine_warnings([quiet, noisy], load=5.4, cores=2)
    assert len(lines) == 2
    assert lines[0].startswith("warning: 1 figure(s) with an interquartile range above 25% of the median (worst: LSTM B=32 infer torch")
    assert lines[1] == ("warning: load average 5.4 is above the 2 cores: other processes shared the CPU during these timings")
    assert bench_stats.machine_warnings([Timing("one", "train", "cpp", [1.0])], load=1.0, cores=2) == []  # one block: no spread


def test_wait_for_blas_pool_outlasts_openblas_spin():
    """The default wait covers OpenBLAS' spin of 2^28 time-stamp-counter ticks down to a 1.5 GHz counter."""
    slept = []
    bench_stats.wait_for_blas_pool(sleep=slept.append)
    assert slept == [bench_stats.BLAS_POOL_SPIN_SECONDS] and slept[0] >= 2**28 / 1.5e9
