"""The statistics behind every benchmark table (:mod:`pyrnn.bench`, :mod:`pyrnn.bench_cnn`):
interleaved timing, medians with their spread, ratios, shares of a peak, and the warnings
that say when a machine is too busy for the figures to mean much.

- :func:`alternate`: ``blocks`` rounds; in each, every implementation runs one block of calls,
  the order rotated each round, so pyrnn and PyTorch see the same load (a busy neighbour slows
  both, not one of them), with a short idle gap before every block: thread pools keep their
  workers spinning for a while after a parallel region (PyTorch's OpenMP ~ms, pyrnn's team
  briefly), and without the gap the block after one of them runs on a core still taken by the
  other's spinning workers (measured: a U-Net inference of pyrnn took 16.8 ms right after
  PyTorch's blocks, 10.7 ms after idle).
- :class:`Timing`: one implementation's block times on one row: median, interquartile range,
  min-max, relative spread.
- :func:`paired_ratios`: speed-ups per round (the blocks of one round ran back to back), whose
  median and range are the speed-up and its spread.
- :func:`share_of_peak`: a rate as a percentage of a peak, never above 100 %: a peak measured
  while the machine was busier than during the row is no peak, so the fastest rate seen counts
  as the peak then (and the caller says so).
- :func:`machine_warnings`: a line when a row's spread is large or the load average is above the
  number of cores.
- :func:`wait_for_blas_pool`: sleep until NumPy's OpenBLAS workers have stopped spinning, before timing
  pyrnn after blocks that used them (the NumPy and Numba backends).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np

__all__ = ["alternate", "Timing", "paired_ratios", "share_of_peak", "machine_warnings", "load_average",
           "wait_for_blas_pool", "LARGE_SPREAD", "BLAS_POOL_SPIN_SECONDS"]

#: interquartile range / median above which a figure is flagged as noisy
LARGE_SPREAD = 0.25

#: How long OpenBLAS' workers spin after a threaded product before they sleep, with room: 2^28 ticks
#: of the time-stamp counter (its THREAD_TIMEOUT default, driver/others/blas_server.c), 0.10 s at 2.6 GHz.
#: Meanwhile each takes a core: pyrnn's RNN T=100 B=64 I=128 H=256 inference ran 12-15 ms instead of 7.6
#: up to 0.1 s after a 1024 x 1024 NumPy product (PyTorch's 38 instead of 19; 2 cores of an AMD EPYC).
BLAS_POOL_SPIN_SECONDS = 0.2


def wait_for_blas_pool(seconds=BLAS_POOL_SPIN_SECONDS, sleep=time.sleep):
    """Sleep until OpenBLAS' workers, woken by a NumPy product before, have stopped spinning (see
    :data:`BLAS_POOL_SPIN_SECONDS`), so the next blocks do not share the cores with them."""
    sleep(seconds)


def alternate(fns, blocks=9, block_seconds=0.05, warmup=1, gap_seconds=0.03, clock=time.perf_counter):
    """{name: [seconds per call, one per block]}: ``blocks`` rounds, in each of which every
    function runs one block of calls, the order rotated each round; a function's block has as
    many calls as last about ``block_seconds`` (at least one), measured after ``warmup`` calls;
    every block starts after ``gap_seconds`` idle, so no block runs while the previous block's
    thread pool still spins (the module docstring). ``clock`` times the blocks (``time.thread_time``:
    CPU time of the calling thread, for one-thread comparisons on a shared machine)."""
    names = list(fns)
    reps = {}
    for name in names:
        fn = fns[name]
        for _ in range(warmup):
            fn()
        t0 = time.perf_counter()
        fn()
        reps[name] = max(1, min(1000, round(block_seconds / max(time.perf_counter() - t0, 1e-7))))
    times = {name: [] for name in names}
    for r in range(blocks):
        for name in names[r % len(names):] + names[: r % len(names)]:
            fn, n = fns[name], reps[name]
            time.sleep(gap_seconds)
            t0 = clock()
            for _ in range(n):
                fn()
            times[name].append((clock() - t0) / n)
    return times


@dataclass
class Timing:
    """One implementation's block times (seconds per call) on one row and mode."""

    label: str
    mode: str
    impl: str
    times: list = field(default_factory=list)
    gflop: float | None = None  # per call, when the row counts its FLOPs
    # the reference (PyTorch) timed in the same alternation as this one, when they were timed as a pair:
    # the speed-up is over it rather than over the row's reference column
    reference: Timing | None = None

    @property
    def median(self):
        return float(np.median(self.times))

    @property
    def quartiles(self):
        return tuple(float(q) for q in np.percentile(self.times, [25, 75]))

    @property
    def range(self):
        return float(np.min(self.times)), float(np.max(self.times))

    @property
    def spread(self):
        """Interquartile range / median (0 for a single block)."""
        lo, hi = self.quartiles
        return (hi - lo) / self.median if self.median > 0 else 0.0

    @property
    def gflops(self):
        """GFLOP/s at the median time (None without a FLOP count)."""
        return None if self.gflop is None else self.gflop / self.median

    @property
    def best_gflops(self):
        """GFLOP/s of the fastest block (None without a FLOP count)."""
        return None if self.gflop is None else self.gflop / min(self.times)


def paired_ratios(reference, timing):
    """``reference / timing`` block by block (round r of one is paired with round r of the other:
    they ran back to back under the same load): the per-round speed-ups of ``timing``."""
    return [a / b for a, b in zip(reference.times, timing.times)]


def share_of_peak(rate, peak, best_seen):
    """``(percent, peak_used)``: ``rate`` as a percentage of ``peak``, where the peak used is the
    larger of ``peak`` and ``best_seen`` (the fastest rate measured anywhere in the run), so the
    share never exceeds 100 %."""
    used = max(peak, best_seen)
    return 100.0 * rate / used, used


def load_average():
    """The 1-minute load average, or None where the OS has none."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def machine_warnings(timings, load=None, cores=None, spread=LARGE_SPREAD):
    """Lines to print under a table: one per row whose interquartile range exceeds ``spread`` x
    its median, and one if the load average ``load`` exceeds ``cores`` (defaults: this machine's)."""
    cores = cores or os.cpu_count() or 1
    load = load_average() if load is None else load
    out = []
    noisy = [t for t in timings if len(t.times) > 1 and t.spread > spread]
    if noisy:
        worst = max(noisy, key=lambda t: t.spread)
        out.append(f"warning: {len(noisy)} figure(s) with an interquartile range above {spread:.0%} of the median "
                   f"(worst: {worst.label} {worst.mode} {worst.impl}, {worst.spread:.0%}): the machine was busy or "
                   "its clock changed; treat the ratios as indicative and rerun on a quiet machine")
    if load is not None and load > cores:
        out.append(f"warning: load average {load:.1f} is above the {cores} cores: other processes shared the CPU "
                   "during these timings")
    return out
