"""How long ``import pyrnn`` takes, against ``import numpy`` (its floor), in fresh interpreters.

Each round starts one interpreter per statement, the order rotated each round, so both see the
same load; the figures are the median and min-max over the rounds of the wall time of the import
statement alone (measured inside the child: interpreter start-up is not counted). The result is
validated first: after ``import pyrnn`` neither SciPy nor Numba nor tqdm is loaded (they load when
first used: GELU's erf, the numba backend, fit's progress bar).

    python benchmarks/import_time.py [--rounds 15] [--path src] [--allow-heavy]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import numpy as np

CHILD = ("import sys, time; t = time.perf_counter(); import {module}; dt = time.perf_counter() - t; "
         "print(dt, *[m for m in ('scipy', 'numba', 'tqdm') if m in sys.modules])")


def import_seconds(module, env):
    """(seconds, heavy modules loaded) of ``import module`` in a fresh interpreter."""
    out = subprocess.run([sys.executable, "-c", CHILD.format(module=module)], capture_output=True, text=True, env=env,
                         check=True).stdout.split()
    return float(out[0]), out[1:]


def main(rounds=15, path=None, allow_heavy=False):
    env = dict(os.environ)
    if path:
        env["PYTHONPATH"] = os.pathsep.join([path] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    _, heavy = import_seconds("pyrnn", env)
    if heavy and not allow_heavy:
        raise SystemExit(f"import pyrnn loaded {heavy}: expected none of scipy, numba, tqdm")
    names = ["numpy", "pyrnn"]
    times = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % 2:] + names[: r % 2]:
            times[name].append(import_seconds(name, env)[0])
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"import time over {rounds} interleaved rounds (load average {load:.2f}, {os.cpu_count()} cores):")
    for name in names:
        t = np.array(times[name]) * 1e3
        print(f"  import {name:6s} median {np.median(t):6.1f} ms (min {t.min():.1f}, max {t.max():.1f})")
    extra = (np.array(times["pyrnn"]) - np.array(times["numpy"])) * 1e3
    print(f"  pyrnn beyond numpy: median {np.median(extra):.1f} ms per round (min {extra.min():.1f}, max {extra.max():.1f})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds (one interpreter per module each)")
    parser.add_argument("--path", default=None, help="a source tree to import pyrnn from (e.g. an older checkout's src)")
    parser.add_argument("--allow-heavy", action="store_true", help="time it even if scipy/numba/tqdm load (an older tree)")
    args = parser.parse_args()
    main(args.rounds, args.path, args.allow_heavy)
