"""Data-parallel training under ``mpiexec -n 2`` against one process (the jobs: mpi_jobs.py).

One launch runs every training job on 2 ranks; each test compares a job's final weights and
History with the same job run here in one process, and rank 0 with rank 1. A second launch
repeats one job for bitwise determinism; a third has a rank raise. Skipped without the
``mpi`` extra (mpi4py and an ``mpiexec``)."""

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("mpi4py")
HERE = os.path.dirname(__file__)
MPIEXEC = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
if MPIEXEC is None:
    pytest.skip("no mpiexec (pip install '.[mpi]' installs MPICH's)", allow_module_level=True)

spec = importlib.util.spec_from_file_location("mpi_jobs", os.path.join(HERE, "mpi_jobs.py"))
jobs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(jobs)

TRAINING = ["lstm_dropout", "conv_gru", "uneven_masked", "tbptt", "diverges", "lstm_allreduce", "checkpoint", "backtest",
            "forecaster_backtest"]


def launch(out_dir, names, timeout=600):
    """``mpiexec -n 2 python mpi_jobs.py out_dir names...`` -> (CompletedProcess, seconds)."""
    t0 = time.time()
    proc = subprocess.run([MPIEXEC, "-n", "2", sys.executable, os.path.join(HERE, "mpi_jobs.py"), str(out_dir), *names],
                          capture_output=True, text=True, timeout=timeout)
    return proc, time.time() - t0


def load(out_dir, name, rank):
    with np.load(os.path.join(out_dir, f"{name}.rank{rank}.npz")) as f:
        return dict(f)


@pytest.fixture(scope="module")
def mpi_runs(tmp_path_factory):
    """Two launches: every job, then lstm_dropout again (determinism across runs)."""
    first, second = tmp_path_factory.mktemp("mpi_first"), tmp_path_factory.mktemp("mpi_second")
    for out, names in ((first, TRAINING), (second, ["lstm_dropout"])):
        proc, _ = launch(out, names)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return first, second


def assert_close(got, want, what, rel=1e-6):
    """Per array: max |got - want| <= rel * max |want| (float32 rounding, not bitwise); NaN where the other is NaN."""
    assert sorted(got) == sorted(want)
    for k in want:
        a, b = np.asarray(got[k], np.float64), np.asarray(want[k], np.float64)
        assert a.shape == b.shape, (what, k)
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=f"{what} {k}: NaN positions")
        a, b = a[~np.isnan(a)], b[~np.isnan(b)]
        scale = max(np.abs(b).max(initial=0.0), 1e-30)
        err = np.abs(a - b).max(initial=0.0) / scale
        assert err <= rel, f"{what} {k}: relative difference {err:.3g} > {rel}"


def parts(arrays, prefix):
    return {k: v for k, v in arrays.items() if k.startswith(prefix)}


@pytest.mark.parametrize("name", ["lstm_dropout", "conv_gru", "uneven_masked", "tbptt", "diverges", "lstm_allreduce"])
def test_two_ranks_equal_one_process(mpi_runs, name, tmp_path):
    rank0, rank1 = load(mpi_runs[0], name, 0), load(mpi_runs[0], name, 1)
    single = jobs.run(name, None, str(tmp_path))
    assert_close(parts(rank0, "w/"), parts(single, "w/"), f"{name} weights")
    assert_close(parts(rank0, "h/"), parts(single, "h/"), f"{name} History")
    for k in [*parts(rank0, "w/"), *parts(rank0, "h/")]:  # every rank holds the same model and History, bit for bit
        np.testing.assert_array_equal(rank1[k], rank0[k], err_msg=k)
    if name == "diverges":  # rank 0's TerminateOnNaN stopped every rank at one process's batch
        assert int(rank0["stopped_at"]) == int(single["stopped_at"]) == 3
    # each of the 2 ranks on this host runs on its share of the cores
    assert int(rank0["threads"]) == max(1, len(os.sched_getaffinity(0)) // 2)


def test_deterministic_mode_is_bitwise_reproducible(mpi_runs):
    a, b = load(mpi_runs[0], "lstm_dropout", 0), load(mpi_runs[1], "lstm_dropout", 0)
    for k in a:
        np.testing.assert_array_equal(b[k], a[k], err_msg=k)
    # the Allreduce mode trains the same model to rounding, through another summation
    fast = load(mpi_runs[0], "lstm_allreduce", 0)
    assert_close(parts(fast, "w/"), parts(a, "w/"), "Allreduce vs deterministic", rel=1e-6)


def test_checkpoints_are_written_once_and_resume_with_and_without_mpi(mpi_runs, tmp_path):
    out = mpi_runs[0]
    rank0, rank1 = load(out, "checkpoint", 0), load(out, "checkpoint", 1)
    assert sorted(os.listdir(os.path.join(out, "checkpoints_mpi"))) == ["epoch1.safetensors", "epoch2.safetensors"]
    assert (int(rank0["saved_here"]), int(rank1["saved_here"])) == (2, 0)  # only rank 0 ran ModelCheckpoint
    final = {k[2:]: v for k, v in parts(rank0, "w/").items()}
    resumed_mpi = {k[len("resumed/"):]: v for k, v in parts(rank0, "resumed/").items()}
    for k in final:  # epoch 2 under MPI from checkpoint 1 = the uninterrupted MPI run, bit for bit
        np.testing.assert_array_equal(resumed_mpi[k], final[k], err_msg=k)
    # the MPI checkpoint resumed in one process: one process's uninterrupted 2 epochs, to rounding
    import pyrnn

    single = jobs.run("checkpoint", None, str(tmp_path))
    want = {k[2:]: v for k, v in parts(single, "w/").items()}
    model = pyrnn.load(os.path.join(out, "checkpoints_mpi", "epoch1.safetensors"))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((45, 12, 3)).astype(np.float32)
    model.fit(x, (x[:, :, :1].sum(axis=1) / 4).astype(np.float32), epochs=1, batch_size=8, verbose=0)
    assert_close(model.state_dict(), want, "resumed without MPI")


def test_backtest_origins_spread_over_ranks(mpi_runs):
    rank0, rank1 = load(mpi_runs[0], "backtest", 0), load(mpi_runs[0], "backtest", 1)
    single = jobs.run("backtest", None, None)
    assert_close({k: v for k, v in rank0.items() if k != "threads"}, single, "backtest")
    for k in rank0:
        np.testing.assert_array_equal(rank1[k], rank0[k], err_msg=k)


def test_forecaster_backtest_origins_spread_over_ranks(mpi_runs):
    rank0, rank1 = load(mpi_runs[0], "forecaster_backtest", 0), load(mpi_runs[0], "forecaster_backtest", 1)
    single = jobs.run("forecaster_backtest", None, None)
    for k, want in single.items():  # each refit is seeded: the same numbers whichever rank ran it
        np.testing.assert_array_equal(rank0[k], want, err_msg=k)
        np.testing.assert_array_equal(rank1[k], want, err_msg=k)


def test_a_raising_rank_ends_the_job_with_its_error(tmp_path):
    proc, seconds = launch(tmp_path, ["raises"], timeout=120)  # without the abort rank 0 would wait forever
    ended = time.time()
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "pyrnn.distributed: rank 1 of 2 raised RuntimeError: injected failure on purpose" in text, text
    assert "(in fit); aborting all 2 ranks" in text, text
    raised_at = float(re.search(r"raised at (\d+\.\d+)", text).group(1))
    assert ended - raised_at < 15, f"the job ended {ended - raised_at:.1f} s after the error"


def test_import_pyrnn_loads_no_mpi():
    code = "import sys, pyrnn, pyrnn.distributed; sys.exit('mpi4py' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_distributed_takes_mpi_or_a_strategy():
    import pyrnn
    from pyrnn.layers import Dense

    model = pyrnn.Sequential([Dense(2, 1, seed=0)]).compile(optimizer="sgd", loss="mse")
    x = np.zeros((4, 2), np.float32)
    with pytest.raises(ValueError, match=r"distributed: expected None, 'mpi' or a pyrnn.distributed.MPIStrategy, got 'horovod'"):
        model.fit(x, x[:, :1], distributed="horovod")
