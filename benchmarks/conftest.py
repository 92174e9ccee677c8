"""Benchmark plumbing: every benchmark validates its result first; the summary prints ratios
against PyTorch (and the NumPy reference) measured in the same run."""

import pytest


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    session = getattr(config, "_benchmarksession", None)
    if session is None or not session.benchmarks:
        return
    groups = {}
    for bench in session.benchmarks:
        groups.setdefault(bench.group, {})[bench.extra_info.get("impl", bench.name)] = bench.stats.median
    tr = terminalreporter
    tr.section("pyrnn: median time and speed-up (reference median / this median), same run")
    for group, rows in sorted(groups.items()):
        tr.write_line(group)
        refs = [r for r in rows if r == "numpy" or r.startswith("torch")]  # "torch", or its two layouts
        for impl, med in sorted(rows.items(), key=lambda kv: kv[1]):
            ratios = "  ".join(f"{rows[r] / med:5.2f}x vs {r}" for r in refs if r != impl)
            tr.write_line(f"  {impl:19s} {med * 1e3:9.2f} ms   {ratios}")


@pytest.fixture
def record_impl(benchmark):
    def record(impl):
        benchmark.extra_info["impl"] = impl
    return record
