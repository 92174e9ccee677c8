"""Write benchmarks/RESULTS.md from one run: pyrnn.bench's layer table (every recurrent config and
Conv1D, every backend, PyTorch), one epoch of the small Conv1D + GRU model, the adding problem's fit step,
bfloat16 LSTMs against float32 and torch.autocast (benchmarks/bf16_vs_torch.py), the busy-machine section
(pyrnn.bench_busy), pyrnn.bench_cnn's image
CNN rows (Conv2D, LeNet-5, a ResNet block, VGG, U-Net, an epoch of LeNet on the digits, against
PyTorch on NCHW and channels_last), the adding problem's fit step against PyTorch, a busy-machine
section (the small model's epoch and the adding step with pyrnn's default threads and with one
thread, quiet and with one other busy process, pyrnn.bench_busy) with the Conv2D layer's GFLOP/s beside the sgemm peak and the
FMA-unit limit, and the peak memory of an LSTM and a U-Net training step (benchmarks/memory.py, a
fresh process per measurement).

    python benchmarks/write_results.py     # --quick: the three small recurrent configs (and Conv1D),
                                           #          fewer blocks for the CNN rows;
                                           # --skip-memory: no memory tables (they take ~a minute);
                                           # --skip-cnn: no image CNN section (~3 min on an idle machine)
                                           # --skip-busy: no busy-machine section (~1 min)

Each section runs in a process of its own, started fresh (``--section NAME`` prints one): what a section
measures does not depend on what ran before it (PyTorch's adding-problem step took 31 ms in a fresh process,
~6,400 page faults a step, and 16 ms with none after the bfloat16 section had run in the same one). The adding
problem's step is measured twice, with glibc's malloc defaults and with its mmap and trim thresholds raised
(then PyTorch's step runs without page faults in a fresh process too). Times are medians; speed-ups are ratios between
implementations timed in the same process, in alternating blocks.
"""

import argparse
import dataclasses
import datetime
import os
import platform
import subprocess
import sys

import bf16_vs_torch  # benchmarks/bf16_vs_torch.py (this script's folder is sys.path[0])
import memory  # benchmarks/memory.py
import numpy as np

import pyrnn
from pyrnn import bench, bench_busy, bench_cnn

try:
    import torch
except ImportError:
    torch = None


def _torch_version():
    return "not installed" if torch is None else f"{torch.__version__} ({torch.get_num_threads()} threads)"


def cnn_section(quick=False, threads=2):
    """The image CNN section: the rows and the digits epoch against both PyTorch layouts, then the
    Conv2D layer's GFLOP/s beside the sgemm peak (measured after the rows) and the FMA-unit limit."""
    rows = bench_cnn.run(blocks=5 if quick else 15)
    epoch = bench_cnn.run_epochs(blocks=3 if quick else 9)
    peak = bench.gemm_peak()
    return (
        "## Image CNNs\n\n"
        "Median wall time in ms of each implementation over alternating blocks of calls (the order rotated every "
        "round), the interquartile range of the blocks in parentheses; `x vs torch` = the faster PyTorch layout's "
        "median / pyrnn's median, and which layout that was (NCHW or CL = channels_last). Every implementation "
        "was first checked against the PyTorch model in float64 (outputs, gradients, running statistics). "
        "Inference: eval mode, no gradient. Training step: forward and backward of a fixed dy, every parameter "
        "gradient (and dx for the Conv2D layer and the ResNet block), no optimizer step. The epoch: pyrnn's `fit` "
        "against the same network, weights, batches and Adam in PyTorch.\n\n"
        + bench_cnn.format_table(rows + epoch)
        + "\n\nConv2D layer throughput (FLOPs: forward 2*B*HO*WO*O*C*KH*KW, training step 3x):\n\n"
        + bench_cnn.format_gflops(rows, peak, bench_cnn.fma_limit(threads))
    )


def busy_section():
    """The busy-machine section: pyrnn.bench_busy's table, with the target it measures."""
    return (
        "## A busy machine\n\n"
        "Median wall time in ms of a training epoch of the small model and of the adding problem's fit step "
        "(min-max over the blocks) with pyrnn's default threads and with `pyrnn.set_num_threads(1)`, in "
        "alternating blocks (the setting changed between blocks, outside the timing), first on the machine as it "
        "is, then with one other process spinning `while True: pass` (killed after its blocks). "
        "Each round runs PyTorch's block first, then the two settings, their order flipped from one round to the "
        "next; `default / 1 thread` is the median (min-max) over each pair of rounds of the ratio of the two "
        "settings' summed times, so that each pair holds one block of each setting right after PyTorch's: the target "
        "is <= 1.10. PyTorch (its "
        "default threads) ran the same epoch in the same rounds: `torch / default` is the per-round speed-up over it "
        "(median, min-max; the adding problem's targets: >= 1.5x quiet, >= 1.0x with the busy process).\n\n"
        + bench_busy.format_table(bench_busy.run())
    )


def bf16_section(threads=2):
    """The bfloat16 section: benchmarks/bf16_vs_torch.py's table (pyrnn's LSTM(dtype="bfloat16") against its
    float32 and against torch.autocast's bf16), with the kernels' path on this CPU."""
    from pyrnn import _C

    with_torch = torch is not None
    return (
        "## bfloat16\n\n"
        f"`LSTM(dtype=\"bfloat16\")` (bf16 operands, float32 sums and cell state) against pyrnn's float32 and "
        f"`torch.autocast(\"cpu\", dtype=torch.bfloat16)`; inference under `no_grad`, training = forward + backward. "
        f"Medians in ms over alternating blocks, speed-ups per round [min-max]. pyrnn's bf16 path here: "
        f"`{_C.bf16_path()}` (CPU features {_C.cpu_features()}).\n\n"
        + bf16_vs_torch.HEADER + "\n" + "\n".join(bf16_vs_torch.rows(threads, with_torch=with_torch))
    )


def layer_section(quick=False, threads=2):
    """The one-layer table: every recurrent config and Conv1D, every backend and PyTorch, with the sgemm
    peak (measured after the rows) and the FMA-unit limit."""
    headline_blocks = 7 if quick else 15  # cpp/torch, the headline ratios (bench.run's others: 7)
    rows = bench.run(quick=quick, first_blocks=headline_blocks)
    peak = bench.gemm_peak()  # after the layers, in the same process
    limit = bench_cnn.fma_limit(threads)
    best = bench.fastest_rate(rows)  # format_table's shares are of the larger of the two
    faster = (f" (here of {best:.0f} GFLOP/s, a row's fastest block, which ran faster than the sgemm: the shares are of "
              "the larger, so none exceeds 100%)") if best > peak else ""
    return (
        "## One layer\n\n"
        "Median wall time in ms (GFLOP/s of the GEMMs in parentheses); `x vs torch` = the median of the per-round "
        "ratios PyTorch / pyrnn, each pyrnn backend timed in alternation with PyTorch alone, cpp's pair in "
        f"{headline_blocks} rounds, the others' in 7 (the torch column: PyTorch's blocks beside cpp's). "
        "Conv1D: stride 1, no padding; PyTorch on its channels-first layout. "
        f"GEMM peak measured in the same process (NumPy's OpenBLAS sgemm, n = 1024 and 2048, every thread): "
        f"{peak:.0f} GFLOP/s; the next column is the default backend's GFLOP/s as a share of it{faster}"
        + (f", the last its share of the FMA units' limit, {limit.describe()}.\n\n" if isinstance(limit, bench_cnn.FmaLimit)
           else f" (the FMA units' limit is unknown here: {limit}).\n\n")
        + bench.format_table(rows, peak=peak, limit=limit.gflops if isinstance(limit, bench_cnn.FmaLimit) else None)
    )


def epoch_section():
    return (f"## One training epoch\n\n{bench.EPOCH.label}: pyrnn's `fit` against the same model, weights, data and batches "
            "in PyTorch. Median wall time of an epoch in ms; `x vs torch` = PyTorch median / pyrnn median.\n\n"
            + bench.format_table(bench.run_epochs()))


#: glibc's malloc with its mmap and trim thresholds raised to 1 GiB (set before the process starts): freed
#: blocks stay mapped, so neither library's step pays page faults for memory it had before
ALLOCATOR_KEPT = {"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=1073741824:glibc.malloc.trim_threshold=1073741824"}


def adding_rows():
    """The adding problem's rows, their label naming the allocator state of this process."""
    state = "glibc thresholds raised" if os.environ.get("GLIBC_TUNABLES") == ALLOCATOR_KEPT["GLIBC_TUNABLES"] else "glibc defaults"
    rows = bench.run_epochs(impls=["cpp", "torch"], case=bench.ADDING, blocks=7, block_seconds=0.1)
    return bench.format_table([dataclasses.replace(t, label=f"{t.label}, {state}") for t in rows])


def adding_section(quick=False, threads=2):
    """The adding problem's fit step in two fresh processes: glibc's defaults, then ALLOCATOR_KEPT."""
    first = fresh("adding-rows", quick, threads)
    kept = fresh("adding-rows", quick, threads, ALLOCATOR_KEPT).splitlines()[2:]  # its rows, not the header
    return (
        f"## The adding problem's fit step\n\n{bench.ADDING.label}: one `fit` call on one batch against the same "
        "model, weights, data, Adam and gradient clipping in PyTorch; median wall time in ms per step over alternating "
        "blocks of ~0.1 s; `x vs torch` = PyTorch median / pyrnn median. pyrnn's default backend (cpp) and PyTorch "
        "alone: blocks of the slower backends in between slowed PyTorch's next blocks (17 -> 28-37 ms; their "
        "threads still held the cores). Two fresh processes: glibc's malloc as it "
        f"comes, then with its mmap and trim thresholds raised to 1 GiB (`GLIBC_TUNABLES={ALLOCATOR_KEPT['GLIBC_TUNABLES']}`): "
        "with the defaults PyTorch's step maps fresh memory "
        "(~6,400 page faults a step), with them raised it keeps its memory, and runs as it did after other "
        "sections had run in its process (none then).\n\n"
        + "\n".join([first] + kept)
    )


def memory_section(skip_cnn=False):
    return (f"## Peak memory\n\nGrowth of the peak resident set over one training step, a fresh process per "
            f"measurement.\n\n{memory.TITLE}.\n\n" + memory.table()
            + ("" if skip_cnn else f"\n\n{memory.unet_title()}.\n\n" + memory.unet_table()))


#: --section NAME: what it prints (the arguments: quick, threads, skip_cnn)
SECTIONS = {
    "layers": lambda quick, threads, skip_cnn: layer_section(quick, threads),
    "epoch": lambda quick, threads, skip_cnn: epoch_section(),
    "adding-rows": lambda quick, threads, skip_cnn: adding_rows(),
    "bf16": lambda quick, threads, skip_cnn: bf16_section(threads),
    "busy": lambda quick, threads, skip_cnn: busy_section(),
    "cnn": lambda quick, threads, skip_cnn: cnn_section(quick, threads),
    "memory": lambda quick, threads, skip_cnn: memory_section(skip_cnn),
}


def fresh(name, quick=False, threads=2, env=None, skip_cnn=False):
    """Section ``name`` measured in a fresh Python process (this script with ``--section``), ``env`` added
    to its environment; its Markdown."""
    cmd = [sys.executable, os.path.abspath(__file__), "--section", name, "--threads", str(threads)]
    cmd += ["--quick"] * quick + ["--skip-cnn"] * skip_cnn
    done = subprocess.run(cmd, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, text=True, check=True)
    return done.stdout.strip()


def sections(quick=False, skip_memory=False, skip_cnn=False, threads=2, skip_busy=False):
    """The Markdown sections after the header, each measured now in a fresh process."""
    out = [fresh("layers", quick, threads), fresh("epoch", quick, threads), adding_section(quick, threads),
           fresh("bf16", quick, threads)]
    if not skip_busy:
        out.append(fresh("busy", quick, threads))
    if not skip_cnn:
        out.append(fresh("cnn", quick, threads))
    if not skip_memory:
        out.append(fresh("memory", quick, threads, skip_cnn=skip_cnn))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="only the three small recurrent configurations (and Conv1D)")
    ap.add_argument("--skip-memory", action="store_true", help="leave out the peak-memory tables")
    ap.add_argument("--skip-cnn", action="store_true", help="leave out the image CNN section (and the U-Net memory)")
    ap.add_argument("--skip-busy", action="store_true", help="leave out the busy-machine section")
    ap.add_argument("--threads", type=int, default=2, help="threads of pyrnn (its team and BLAS) and of PyTorch (default 2)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md"))
    ap.add_argument("--section", choices=sorted(SECTIONS), help="print this one section, measured in this process")
    args = ap.parse_args()
    pyrnn.set_num_threads(args.threads)
    if torch is not None:
        torch.set_num_threads(args.threads)
    if args.section:
        print(SECTIONS[args.section](args.quick, args.threads, args.skip_cnn))
        return 0
    flags = "".join(f" --{k.replace('_', '-')}" for k in ("quick", "skip_memory", "skip_cnn", "skip_busy") if getattr(args, k))
    flags += f" --threads {args.threads}" if args.threads != 2 else ""
    env = {k: os.environ.get(k, "(unset)") for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS")}
    text = (
        "# pyrnn benchmark results\n\n"
        f"Generated {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC} by `python benchmarks/write_results.py"
        f"{flags}`, one run, each section in a fresh process.\n\n"
        f"Machine: {bench_cnn.cpu_description()}, {os.cpu_count()} cores, {args.threads} threads used; "
        f"Python {platform.python_version()}, NumPy {np.__version__}, "
        f"pyrnn {pyrnn.__version__}, PyTorch {_torch_version()}; environment {env}.\n\n"
        + "\n\n".join(sections(args.quick, args.skip_memory, args.skip_cnn, args.threads, args.skip_busy)) + "\n"
    )
    with open(args.out, "w") as f:
        f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
