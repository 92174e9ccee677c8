"""A training epoch on a busy machine: pyrnn's default threads against one thread, quiet and with
one other busy process (``benchmarks/write_results.py``'s busy-machine section).

The busy process is a second Python interpreter spinning ``while True: pass`` (one core's worth of
load, as another user's job would be), started before the timed blocks of its condition and
killed after them, whatever happens. In each condition the two settings run in alternating
blocks, an idle gap before each block (as :func:`pyrnn.bench_stats.alternate`), in an order that
gives each setting the same predecessors (:func:`round_order`); the thread setting is changed
between blocks, outside the timing. The figure that matters is the ratio default / one thread over
each pair of rounds (:func:`pair_ratios`): the target is <= 1.10 in both conditions. PyTorch (its
default threads) runs the same epoch in the same rounds where it is installed, so the speed-up over
it is measured on the busy machine too (the adding problem's target there: >= 1.0x).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time

from .bench_stats import Timing

#: the two settings of each condition: pyrnn's default (no cap) and one thread
SETTINGS = {"default": None, "1 thread": 1}


@contextlib.contextmanager
def busy_process():
    """One other process spinning on a core while the block runs; killed (and reaped) on the way out."""
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.2)  # running, and counted by the kernels' load sample
        yield proc
    finally:
        proc.kill()
        proc.wait()


def round_order(settings, others, r):
    """The blocks of round ``r``: the ``others`` first, then the ``settings``, in order on even rounds and
    reversed on odd ones. So over an even number of rounds each setting follows the others' last block
    (PyTorch's, whose threads may still hold the cores) as often as the other setting does. A rotation
    of three names did not: the default followed PyTorch in two rounds of three and one thread in one,
    and on a busy machine the block after PyTorch's is the slow one (the adding problem's step, one
    process: default / 1 thread 1.16-1.31 rotated, both settings running one thread)."""
    ordered = list(settings) if r % 2 == 0 else list(settings)[::-1]
    return list(others) + ordered


def alternate_settings(fn, blocks=6, gap_seconds=0.03, others=None):
    """{setting: [seconds per call of ``fn``]}, one call per block, the settings of :data:`SETTINGS` in
    the order of :func:`round_order` each round; ``pyrnn.set_num_threads`` is called between blocks (not
    timed) and undone at the end. ``others`` ({name: fn}, e.g. PyTorch's epoch) run in the same rounds,
    with pyrnn's default threads."""
    import pyrnn

    calls = {name: (fn, threads) for name, threads in SETTINGS.items()}
    calls.update({name: (other, None) for name, other in (others or {}).items()})
    names = list(calls)
    times = {name: [] for name in names}
    other_names = [name for name in names if name not in SETTINGS]
    try:
        for name in names:  # warm-up in each setting
            pyrnn.set_num_threads(calls[name][1])
            calls[name][0]()
        for r in range(blocks):
            for name in round_order(SETTINGS, other_names, r):
                call, threads = calls[name]
                pyrnn.set_num_threads(threads)
                time.sleep(gap_seconds)
                t0 = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - t0)
    finally:
        pyrnn.set_num_threads(None)
    return times


def run(cases=None, blocks=10, torch=True):
    """[:class:`~pyrnn.bench_stats.Timing`]: for each case (default: :data:`pyrnn.bench.EPOCH` and
    :data:`pyrnn.bench.ADDING`, pyrnn's cpp backend) and condition ("quiet", "1 busy process"), the
    epoch in each setting (Timing.impl is the setting) and, with ``torch`` where it is installed, PyTorch's
    (impl "torch")."""
    from . import bench

    rows = []
    for case in cases or (bench.EPOCH, bench.ADDING):
        fns = bench.epoch_functions(case, ["cpp", "torch"] if torch else ["cpp"])  # validated against the reference
        others = {"torch": fns["torch"]} if "torch" in fns else {}
        for condition in ("quiet", "1 busy process"):
            with busy_process() if condition != "quiet" else contextlib.nullcontext():
                times = alternate_settings(fns["cpp"], blocks, others=others)
            rows += [Timing(case.label, condition, name, t) for name, t in times.items()]
    return rows


def pair_ratios(a, b):
    """a / b over each pair of rounds (2k, 2k + 1): the sum of a's two blocks over the sum of b's (a last
    odd round is left out). :func:`round_order` puts one block of each setting right after PyTorch's in
    every pair, so each ratio compares like with like: with one busy process the block that follows
    PyTorch's ran 2-3 ms slower in either setting (the adding problem's 9-10 ms step), and a per-round
    ratio swung between ~0.8 and ~1.3 with the order, its median wherever the few rounds put it."""
    n = min(len(a), len(b)) // 2 * 2
    return [(a[i] + a[i + 1]) / (b[i] + b[i + 1]) for i in range(0, n, 2)]


def format_table(rows):
    """One line per case and condition: each setting's median ms (min-max) and the ratio default / 1 thread
    over each pair of rounds (:func:`pair_ratios`; median, min-max); PyTorch's median ms and the per-round
    speed-up torch / default where it ran ("-" otherwise)."""
    from .bench_stats import paired_ratios

    lines = ["| config | machine | default ms | 1 thread ms | default / 1 thread | torch ms | torch / default |",
             "|---|---|---|---|---|---|---|"]
    keyed = {(t.label, t.mode, t.impl): t for t in rows}

    def cell(t):
        return f"{t.median * 1e3:.1f} ({t.range[0] * 1e3:.1f}-{t.range[1] * 1e3:.1f})"

    def ratio(r, unit=""):  # median (min-max)
        r = sorted(r)
        return f"{r[len(r) // 2]:.2f}{unit} ({r[0]:.2f}-{r[-1]:.2f})"

    for label, mode in dict.fromkeys((t.label, t.mode) for t in rows):
        d, one, tt = keyed[label, mode, "default"], keyed[label, mode, "1 thread"], keyed.get((label, mode, "torch"))
        torch_cells = f"{cell(tt)} | {ratio(paired_ratios(tt, d), 'x')}" if tt is not None else "- | -"
        lines.append(f"| {label} | {mode} | {cell(d)} | {cell(one)} | {ratio(pair_ratios(d.times, one.times))} | "
                     f"{torch_cells} |")
    return "\n".join(lines)
