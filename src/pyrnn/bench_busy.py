"""A training epoch on a busy machine: pyrnn's default threads against one thread, quiet and with
one other busy process (``benchmarks/write_results.py``'s busy-machine section).

The busy process is a second Python interpreter spinning ``while True: pass`` (one core's worth of
load, as another user's job would be), started before the timed blocks of its condition and
killed after them, whatever happens. In each condition the two settings run in alternating
blocks (the order rotated every round, an idle gap before each block, as
:func:`pyrnn.bench_stats.alternate`); the thread setting is changed between blocks, outside the
timing. The figure that matters is the ratio default / one thread of each round: the target is
<= 1.10 in both conditions. PyTorch (its default threads) runs the same epoch in the same rounds where
it is installed, so the speed-up over it is measured on the busy machine too (the adding problem's
target there: >= 1.0x).
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


def alternate_settings(fn, blocks=5, gap_seconds=0.03, others=None):
    """{setting: [seconds per call of ``fn``]}, one call per block, the settings of :data:`SETTINGS` in
    rotated order each round; ``pyrnn.set_num_threads`` is called between blocks (not timed) and
    undone at the end. ``others`` ({name: fn}, e.g. PyTorch's epoch) run in the same rounds, with
    pyrnn's default threads."""
    import pyrnn

    calls = {name: (fn, threads) for name, threads in SETTINGS.items()}
    calls.update({name: (other, None) for name, other in (others or {}).items()})
    names = list(calls)
    times = {name: [] for name in names}
    try:
        for name in names:  # warm-up in each setting
            pyrnn.set_num_threads(calls[name][1])
            calls[name][0]()
        for r in range(blocks):
            for name in names[r % len(names):] + names[: r % len(names)]:
                call, threads = calls[name]
                pyrnn.set_num_threads(threads)
                time.sleep(gap_seconds)
                t0 = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - t0)
    finally:
        pyrnn.set_num_threads(None)
    return times


def run(cases=None, blocks=9, torch=True):
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


def format_table(rows):
    """One line per case and condition: each setting's median ms (min-max) and the per-round ratio
    default / 1 thread (median, min-max); PyTorch's median ms and the per-round speed-up torch / default
    where it ran ("-" otherwise)."""
    from .bench_stats import paired_ratios

    lines = ["| config | machine | default ms | 1 thread ms | default / 1 thread | torch ms | torch / default |",
             "|---|---|---|---|---|---|---|"]
    keyed = {(t.label, t.mode, t.impl): t for t in rows}

    def cell(t):
        return f"{t.median * 1e3:.1f} ({t.range[0] * 1e3:.1f}-{t.range[1] * 1e3:.1f})"

    def ratio(a, b, unit=""):  # a / b per round: median (min-max)
        r = sorted(paired_ratios(a, b))
        return f"{r[len(r) // 2]:.2f}{unit} ({r[0]:.2f}-{r[-1]:.2f})"

    for label, mode in dict.fromkeys((t.label, t.mode) for t in rows):
        d, one, tt = keyed[label, mode, "default"], keyed[label, mode, "1 thread"], keyed.get((label, mode, "torch"))
        torch_cells = f"{cell(tt)} | {ratio(tt, d, 'x')}" if tt is not None else "- | -"
        lines.append(f"| {label} | {mode} | {cell(d)} | {cell(one)} | {ratio(d, one)} | {torch_cells} |")
    return "\n".join(lines)
