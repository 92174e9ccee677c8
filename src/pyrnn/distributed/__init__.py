"""Training and backtests over several processes with MPI (``pip install ".[mpi]"``: mpi4py + MPICH).

Run a script under ``mpiexec -n N python script.py``; every rank runs the whole script with the
same data, and

- ``model.fit(x, y, ..., distributed="mpi")`` and ``pyrnn.fit_tbptt(..., distributed="mpi")``
  train data-parallel: each global batch of ``batch_size`` rows is cut into N contiguous
  shares, the gradients are combined once per step, and the result equals one process with
  the same ``batch_size`` (bit for bit across runs with ``deterministic=True``, the default:
  pass ``distributed=MPIStrategy(deterministic=False)`` for one ``Allreduce``);
- ``pyrnn.timeseries.rolling_origin(..., distributed="mpi")`` spreads the origins over the ranks;
- :meth:`MPIStrategy.map` spreads any list of independent tasks.

How it works, what it costs and how to run it on a cluster: ``docs/distributed.md``.
``import pyrnn`` imports no MPI: mpi4py is loaded when a strategy is first made.
"""

from __future__ import annotations

__all__ = ["MPIStrategy", "get_strategy"]


def __getattr__(name):  # the strategy imports the training loop, which imports the layers, which import .rows
    if name in __all__:
        from . import mpi

        return getattr(mpi, name)
    raise AttributeError(f"module 'pyrnn.distributed' has no attribute {name!r}")
