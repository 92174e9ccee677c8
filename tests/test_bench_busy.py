"""pyrnn.bench_busy: the busy process is started and always killed; the settings alternate and are undone."""

import os
import re

import pytest

import pyrnn
from pyrnn import bench_busy
from pyrnn.bench_stats import Timing


def test_busy_process_spins_and_is_killed_even_on_an_error():
    with pytest.raises(RuntimeError, match="inside"):
        with bench_busy.busy_process() as proc:
            pid = proc.pid
            assert proc.poll() is None  # running
            raise RuntimeError("inside")
    assert proc.poll() is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_alternate_settings_runs_each_setting_and_undoes_the_cap():
    seen = []
    times = bench_busy.alternate_settings(lambda: seen.append(pyrnn.get_num_threads()), blocks=3, gap_seconds=0)
    assert set(times) == set(bench_busy.SETTINGS) and all(len(t) == 3 for t in times.values())
    assert seen.count(1) == 4 and len(seen) == 8  # a warm-up and three blocks per setting
    assert pyrnn.threads._state["n"] is None  # the cap is undone


def test_alternate_settings_runs_the_others_in_the_same_rounds_with_the_default_threads():
    seen = []
    times = bench_busy.alternate_settings(lambda: seen.append("pyrnn"), blocks=3, gap_seconds=0,
                                          others={"torch": lambda: seen.append(("torch", pyrnn.threads._state["n"]))})
    assert set(times) == {*bench_busy.SETTINGS, "torch"} and all(len(t) == 3 for t in times.values())
    assert seen.count(("torch", None)) == 4 and len(seen) == 12


def test_format_table_gives_the_per_round_ratio_default_over_one_thread():
    rows = [Timing("epoch", "quiet", "default", [0.011, 0.022, 0.033]),
            Timing("epoch", "quiet", "1 thread", [0.010, 0.020, 0.030])]
    last = bench_busy.format_table(rows).splitlines()[-1]
    assert re.fullmatch(r"\| epoch \| quiet \| 22\.0 \(11\.0-33\.0\) \| 20\.0 \(10\.0-30\.0\) \| 1\.10 \(1\.10-1\.10\) \| - \| - \|",
                        last), last
    rows.append(Timing("epoch", "quiet", "torch", [0.022, 0.066, 0.033]))
    last = bench_busy.format_table(rows).splitlines()[-1]
    assert last.endswith("| 33.0 (22.0-66.0) | 2.00x (1.00-3.00) |"), last  # torch / default per round
