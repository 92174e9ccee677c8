"""One training epoch with 1 and 2 MPI ranks on this machine, the gradient reduction's share of
the step, the cost of the deterministic mode, and the scaling estimate of docs/distributed.md.

    python benchmarks/distributed_epoch.py [--blocks 3] [--reps 2] [--model lstm|conv_gru]

Configurations, each in its own ``mpiexec`` launch, launches alternating over ``--blocks`` blocks:
one process without MPI on all cores and on one core, and 2 ranks of one thread each (the same
global batch: each rank computes half of it). Each 2-rank launch times ``--reps`` epochs in the
deterministic mode (gather on rank 0, float64 sum, broadcast) and as many with one in-place
Allreduce, alternating. Before any timing, the 2-rank launch's first epoch (deterministic) is
checked against one process's (final weights within 1e-6 relative).

Models (float32, SGD with momentum, global batch 64):
- ``lstm``: LSTM(32 -> 256) + Dense(256 -> 1) on T = 50 steps, 1024 samples (16 steps per epoch)
- ``conv_gru``: the README's forecaster, Conv1D(1 -> 16, k=5) + GRU(16 -> 32) + Dense(32 -> 1),
  windows of 40 steps, 1920 samples (30 steps per epoch)

Timings on a shared 2-core machine are indicative; the table gives medians [min, max].
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

from pyrnn.bench_cnn import cpu_description

BATCH = 64




def build(name):
    import pyrnn
    from pyrnn.layers import Conv1D, Dense, LastStep

    rng = np.random.default_rng(0)
    if name == "lstm":
        x = rng.standard_normal((1024, 50, 32)).astype(np.float32)
        y = x[:, -5:, :1].mean(axis=1)
        model = pyrnn.Sequential([pyrnn.LSTM(32, 256, seed=0), LastStep(), Dense(256, 1, seed=1)])
    else:
        t = np.arange(2000)
        series = (np.sin(2 * np.pi * t / 50) + 0.1 * rng.standard_normal(t.size)).astype(np.float32)
        x = np.stack([series[i : i + 40] for i in range(1920)])[:, :, None]
        y = series[40:1960, None]
        model = pyrnn.Sequential([Conv1D(1, 16, 5, padding="causal", seed=0), pyrnn.GRU(16, 32, seed=1), LastStep(),
                                  Dense(32, 1, seed=2)])
    # SGD with momentum: its update is linear in the gradient, so one epoch on 2 ranks equals one
    # process to float32 rounding (6e-8 here). Adam's g / (sqrt(v) + eps) turns the rounding of
    # near-zero gradient elements into differences of up to lr (docs/distributed.md)
    model.compile(optimizer=pyrnn.optim.SGD(model.param_grad_pairs(), lr=1e-2, momentum=0.9), loss="mse")
    return model, x, y


def worker(name, reps, threads, ranks, out):
    """Under mpiexec (ranks > 1) or alone: time epochs, print one JSON line on rank 0."""
    import pyrnn

    pyrnn.set_num_threads(threads)
    model, x, y = build(name)
    n_params = sum(p.size for p in model.parameters())
    steps = -(-len(x) // BATCH)
    times = {}
    if ranks == 1:  # the reference: plain fit, no MPI
        model.fit(x, y, epochs=1, batch_size=BATCH, seed=0, verbose=0)
        np.save(out, np.concatenate([p.ravel() for p in model.parameters()]))
        times["epoch"] = []
        for _ in range(reps):
            t0 = time.perf_counter()
            model.fit(x, y, epochs=1, batch_size=BATCH, verbose=0)
            times["epoch"].append(time.perf_counter() - t0)
        rank = 0
    else:
        from pyrnn.distributed import MPIStrategy

        modes = {"deterministic": MPIStrategy(deterministic=True), "allreduce": MPIStrategy(deterministic=False)}
        comm, rank = modes["deterministic"].comm, modes["deterministic"].rank
        model.fit(x, y, epochs=1, batch_size=BATCH, seed=0, verbose=0, distributed=modes["deterministic"])
        if rank == 0:
            np.save(out, np.concatenate([p.ravel() for p in model.parameters()]))
        for mode in modes:
            times[mode], times[mode + "_reduce"] = [], []
        for _ in range(reps):
            for mode, strategy in modes.items():
                comm.Barrier()
                t0 = time.perf_counter()
                model.fit(x, y, epochs=1, batch_size=BATCH, verbose=0, distributed=strategy)
                comm.Barrier()
                times[mode].append(time.perf_counter() - t0)
                times[mode + "_reduce"].append(strategy.stats["reduce_seconds"])
        # the reduction alone, every rank entering it together (no wait for a slower rank)
        grads = [g for _, g in model.param_grad_pairs()]
        for mode, strategy in modes.items():
            times[mode + "_alone"] = []
            for _ in range(20):
                comm.Barrier()
                t0 = time.perf_counter()
                strategy.reduce_grads(grads, [0.5, 0.5])
                times[mode + "_alone"].append(time.perf_counter() - t0)
    if rank == 0:
        print(json.dumps({"params": int(n_params), "steps": steps, "times": times}), flush=True)


def launch(mpiexec, name, reps, threads, ranks, out):
    cmd = [sys.executable, __file__, "--worker", name, str(reps), str(threads), str(ranks), out]
    if ranks > 1:
        cmd = [mpiexec, "-n", str(ranks), *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def stats(values):
    v = np.asarray(values)
    return float(np.median(v)), float(v.min()), float(v.max())


def ring_seconds(params, n_hosts, gbit, latency=20e-6):
    """A ring Allreduce of float32 gradients: 2 (N - 1) / N x P x 4 bytes over each host's link,
    plus 2 (N - 1) message latencies (20 us: TCP over Ethernet; InfiniBand is ~2 us)."""
    volume = 2 * (n_hosts - 1) / n_hosts * params * 4
    return volume * 8 / (gbit * 1e9) + 2 * (n_hosts - 1) * latency, volume


def deterministic_seconds(params, n_hosts, gbit, latency=20e-6):
    """The deterministic mode: rank 0's link receives (N - 1) x P x 4 bytes (the gather), then a
    broadcast of P x 4 bytes (scatter + allgather: 2 (N - 1) / N x P x 4 per link)."""
    volume = (n_hosts - 1 + 2 * (n_hosts - 1) / n_hosts) * params * 4
    return volume * 8 / (gbit * 1e9) + (n_hosts - 1 + 2 * np.log2(n_hosts)) * latency


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blocks", type=int, default=3)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--model", choices=["lstm", "conv_gru"], default="lstm")
    parser.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        name, reps, threads, ranks, out = args.worker
        return worker(name, int(reps), int(threads), int(ranks), out)
    mpiexec = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
    if mpiexec is None:
        sys.exit("no mpiexec: pip install '.[mpi]' (mpi4py + MPICH)")
    cores = len(os.sched_getaffinity(0))
    configs = [("1 process, all cores", cores, 1), ("1 process, 1 thread", 1, 1), ("2 ranks x 1 thread", 1, 2)]
    runs = {c[0]: [] for c in configs}
    with tempfile.TemporaryDirectory() as tmp:
        for block in range(args.blocks):
            for label, threads, ranks in configs:
                out = os.path.join(tmp, f"{block}_{ranks}_{threads}.npy")
                runs[label].append(launch(mpiexec, args.model, args.reps, threads, ranks, out))
                if ranks > 1:  # validate before the timings count: 2 ranks = one process, to rounding
                    want, got = np.load(os.path.join(tmp, f"{block}_1_1.npy")), np.load(out)
                    err = np.abs(got - want).max() / np.abs(want).max()
                    if err > 1e-6:
                        raise RuntimeError(f"2 ranks differ from one process by {err:.3g} (relative) after one epoch")
    params, steps = runs[configs[0][0]][0]["params"], runs[configs[0][0]][0]["steps"]
    print(f"{cpu_description()}, {cores} cores; model {args.model}: {params} parameters, {steps} steps of batch {BATCH} "
          f"per epoch; {args.blocks} launches x {args.reps} epochs per configuration; median [min, max]")
    print(f"{'configuration':34} {'epoch s':>22} {'step ms':>8} {'reduction ms/step':>18} {'share':>6} "
          f"{'reduction alone ms':>19} {'share':>6}")
    ref = None
    for label, *_ in configs:
        merged = {}
        for r in runs[label]:
            for k, v in r["times"].items():
                merged.setdefault(k, []).extend(v)
        for mode in ("epoch", "deterministic", "allreduce"):
            if mode not in merged:
                continue
            med, lo, hi = stats(merged[mode])
            row = f"{label + ('' if mode == 'epoch' else ', ' + mode):34} {med:8.3f} [{lo:.3f}, {hi:.3f}] {1e3 * med / steps:8.1f}"
            if mode + "_reduce" in merged:
                red = float(np.median(merged[mode + "_reduce"]))
                alone = float(np.median(merged[mode + "_alone"]))
                row += f" {1e3 * red / steps:18.2f} {red / med:6.1%} {1e3 * alone:19.2f} {alone * steps / med:6.1%}"
            print(row)
            if label == "1 process, 1 thread":
                ref = med / steps
    print(f"\nScaling estimate (weak scaling: {BATCH} samples per rank and host, one rank per host computing a step "
          f"in {1e3 * ref:.1f} ms as measured on one thread above; ring Allreduce of {params * 4 / 1e6:.2f} MB, "
          "not overlapped with the backward):")
    print(f"{'hosts':>6} {'ring bytes/step':>16} | {'10 Gb/s: ring ms':>16} {'eff.':>6} {'determ. ms':>10} {'eff.':>6} | "
          f"{'100 Gb/s: ring ms':>17} {'eff.':>6} {'determ. ms':>10} {'eff.':>6}")
    for n in (2, 4, 8, 16, 64, 256):
        row = ""
        for gbit in (10, 100):
            ring, vol = ring_seconds(params, n, gbit)
            det = deterministic_seconds(params, n, gbit)
            row += f" | {1e3 * ring:{16 + (gbit == 100)}.2f} {ref / (ref + ring):6.1%} {1e3 * det:10.2f} {ref / (ref + det):6.1%}"
        print(f"{n:6d} {vol / 1e6:14.2f}MB{row}")


if __name__ == "__main__":
    main()
