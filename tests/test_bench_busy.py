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


def test_round_order_puts_each_setting_after_the_others_in_half_the_rounds():
    after = {name: 0 for name in bench_busy.SETTINGS}
    for r in range(6):
        order = bench_busy.round_order(bench_busy.SETTINGS, ["torch"], r)
        assert sorted(order) == sorted([*bench_busy.SETTINGS, "torch"]) and order[0] == "torch"
        after[order[1]] += 1
    assert after == {name: 3 for name in bench_busy.SETTINGS}


def test_pair_ratios_compare_each_pair_of_rounds_sums():
    # the block after PyTorch's (round 0: default, round 1: 1 thread) 3 ms slower in either setting
    default, one = [0.013, 0.010, 0.013, 0.010, 0.050], [0.010, 0.013, 0.010, 0.013]
    assert bench_busy.pair_ratios(default, one) == pytest.approx([1.0, 1.0])  # per round: 1.3, 0.77, ...


def test_format_table_gives_the_ratio_default_over_one_thread_per_pair_of_rounds():
    rows = [Timing("epoch", "quiet", "default", [0.011, 0.022, 0.033, 0.044]),
            Timing("epoch", "quiet", "1 thread", [0.010, 0.020, 0.030, 0.040])]
    last = bench_busy.format_table(rows).splitlines()[-1]
    assert re.fullmatch(r"\| epoch \| quiet \| 27\.5 \(11\.0-44\.0\) \| 25\.0 \(10\.0-40\.0\) \| 1\.10 \(1\.10-1\.10\) \| - \| - \|",
                        last), last
    rows.append(Timing("epoch", "quiet", "torch", [0.022, 0.066, 0.033, 0.088]))
    last = bench_busy.format_table(rows).splitlines()[-1]
    assert last.endswith("| 49.5 (22.0-88.0) | 2.00x (1.00-3.00) |"), last  # torch / default per round
