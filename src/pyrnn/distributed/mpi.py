"""Data-parallel training over MPI: the strategy behind ``fit(..., distributed="mpi")``.

Legend: N = ranks, r = this rank, b = rows of a global batch, [s_r, e_r) = rank r's rows of it
(contiguous, ``s_r = ceil(r b / N)``, so rank 0 has rows whenever b > 0), c_r = positions rank r's
rows select for the loss (its rows, or the mask's selected entries), w_r = c_r / sum c, P = the
parameters' element count, g_r = the gradient of rank r's mean loss.

One process with batch b minimises the mean over the batch's selected positions. Every loss is
such a mean, so ``mean_batch = sum_r w_r mean_r`` and ``grad = sum_r w_r g_r``: each rank runs
the ordinary step (:func:`pyrnn.models.training.train_step`) on its rows and the strategy, as the
step's ``reducer``, combines

- the loss and metrics: ``sum_r w_r v_r`` in float64 (``rmse``: ``sqrt(sum_r w_r v_r^2)``), before
  the backward, so every rank sees one value and skips a non-finite step together;
- the gradients: one flat buffer per step. ``deterministic=True`` (the default): gathered on
  rank 0 in rank order, ``sum_r w_r g_r`` in float64 there, broadcast: the same bits for a fixed
  N on every run. ``deterministic=False``: ``w_r g_r`` in the gradients' dtype, one in-place
  ``MPI_Allreduce`` (Horovod's tensor fusion; MPI may change its summation order with the
  message size, so runs agree to rounding only).

Clipping and the optimizer step then run on every rank on the same gradient, as in one process.
Dropout draws one process's masks for the rank's rows (:mod:`pyrnn.distributed.rows`); a rank
whose rows the loss does not read runs its forward without gradient (same masks, and truncated
BPTT's next state), and a rank without rows (b < N) receives rank 0's generators after the step.

Callbacks run on rank 0 only; after each hook rank 0's ``stop_training`` and learning rate are
broadcast, after ``on_train_end`` its weights and optimizer state
(``EarlyStopping(restore_best_weights=True)``). Validation deals the evaluation batches over
the ranks and sums their weighted means. BatchNorm uses each rank's own rows for its batch
statistics (not synchronised) and rank 0's running statistics are those a checkpoint keeps.
"""

from __future__ import annotations

import contextlib
import sys
import time
import traceback
import zlib

import numpy as np

from .._checks import check_bool, check_int
from ..grad_mode import no_grad
from ..models import training
from ..threads import _cpu_count, set_num_threads
from ..threads import _state as _thread_state
from .rows import batch_rows

__all__ = ["MPIStrategy", "get_strategy"]


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise ImportError("distributed='mpi': expected mpi4py (pip install \".[mpi]\" installs mpi4py and MPICH), "
                          f"got {exc}") from exc
    return MPI


class MPIStrategy:
    """Data-parallel training over the ranks of an MPI communicator.

    Parameters
    ----------
    deterministic : bool, default True
        Sum the gradients on rank 0 in rank order (float64) and broadcast them: bitwise the
        same result on every run with the same N. False: one in-place ``Allreduce`` (less
        traffic through rank 0 on many hosts; equal to rounding).
    comm : mpi4py communicator or None (``MPI.COMM_WORLD``)
    threads : int or None
        Threads per rank for the kernels and BLAS (``pyrnn.set_num_threads``). None: keep a
        cap the script set itself, else the host's cores divided by the ranks on that host.

    Attributes
    ----------
    rank, size : this rank and the number of ranks
    stats : ``{"steps", "reduce_seconds"}``: gradient reductions run and the wall time spent in
        them (packing, communication including the wait for the slowest rank, unpacking) since
        the last ``fit`` began
    """

    def __init__(self, deterministic=True, comm=None, threads=None):
        MPI = _mpi()
        self._MPI = MPI
        self.deterministic = check_bool("deterministic", deterministic)
        self.comm = MPI.COMM_WORLD if comm is None else comm
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.threads = None if threads is None else check_int("threads", threads, 1, None)
        self._threads_set = False
        self._flat, self._parts = None, None  # the flat gradient buffer; rank 0's gather buffers
        self.stats = {"steps": 0, "reduce_seconds": 0.0}

    def __repr__(self):
        return f"MPIStrategy(deterministic={self.deterministic}, rank={self.rank}, size={self.size})"

    # ------------------------------------------------------------ the whole job
    @contextlib.contextmanager
    def guard(self, who):
        """Run a training call; if this rank raises, print which rank raised what and abort
        every rank (``MPI_Abort``) so that none waits forever in a collective call."""
        try:
            yield
        except BaseException as exc:
            if self.size == 1:
                raise
            traceback.print_exc(file=sys.stderr)
            print(f"pyrnn.distributed: rank {self.rank} of {self.size} raised {type(exc).__name__}: {exc} "
                  f"(in {who}); aborting all {self.size} ranks", file=sys.stderr, flush=True)
            # mpiexec forwards a rank's output asynchronously and MPI_Abort kills the job at once: without a
            # moment for the forwarding, the lines above were sometimes cut (seen once in CI)
            time.sleep(0.5)
            self.comm.Abort(1)

    def verbose(self, verbose):
        """Only rank 0 prints the progress."""
        return verbose if self.rank == 0 else 0

    def _cap_threads(self):
        if self._threads_set:
            return
        self._threads_set = True
        if self.threads is not None:
            set_num_threads(self.threads)
        elif _thread_state["n"] is None:  # the script set no cap of its own
            host = self.comm.Split_type(self._MPI.COMM_TYPE_SHARED)
            per_host = host.Get_size()
            host.Free()
            set_num_threads(max(1, _cpu_count() // per_host))

    def begin(self, model, arrays, who="fit"):
        """At the start of training: cap the threads, check that every rank holds the same data
        (shapes, dtypes and a checksum of some rows) and give every rank rank 0's weights,
        optimizer state, generators, epochs done and History."""
        self._cap_threads()
        self.stats = {"steps": 0, "reduce_seconds": 0.0}
        sig = [_signature(a) for a in arrays]
        sigs = self.comm.allgather(sig)
        for r, s in enumerate(sigs):
            if s != sigs[0]:
                raise ValueError(f"{who}(distributed='mpi'): expected the same data on every rank, got on rank {r} "
                                 f"(shape, dtype, checksum) {s} and on rank 0 {sigs[0]}")
        state = self.comm.bcast(_training_state(model, optimizer=True) if self.rank == 0 else None, root=0)
        if self.rank:
            _load_training_state(model, state)

    # ------------------------------------------------------------ one step
    def bounds(self, total):
        """The rows ``[bounds[r], bounds[r + 1])`` of a global batch of ``total`` rows that rank r takes."""
        return [-(-r * total // self.size) for r in range(self.size + 1)]

    def batch(self, model, rows):
        """This rank's share of the global batch ``rows`` (an index array) of ``model``."""
        return _Batch(self, model, np.asarray(rows))

    def train_step(self, model, xs, ys, mask, lengths, idx):
        """:func:`pyrnn.models.training.train_step` on the global batch ``idx``: this rank's rows,
        the loss, metrics and gradients combined over the ranks."""
        batch = self.batch(model, idx)
        return batch.step(model, xs, ys, mask, lengths, batch.local, None if mask is None else np.asarray(mask)[idx])

    def sum(self, vec):
        """``sum_r vec_r`` of a float64 vector, on every rank (deterministic: in rank order on rank 0)."""
        vec = np.ascontiguousarray(vec, dtype=np.float64)
        if self.size == 1:
            return vec
        if not self.deterministic:
            self.comm.Allreduce(self._MPI.IN_PLACE, vec, op=self._MPI.SUM)
            return vec
        parts = np.empty((self.size, vec.size), np.float64) if self.rank == 0 else None
        self.comm.Gather(vec, parts, root=0)
        if self.rank == 0:
            vec = parts[0].copy()
            for r in range(1, self.size):
                vec += parts[r]
        self.comm.Bcast(vec, root=0)
        return vec

    def reduce_grads(self, grads, shares):
        """``grads <- sum_r shares[r] g_r`` in place on every rank, through one flat buffer."""
        t0 = time.perf_counter()
        dtype = np.result_type(*grads)
        sizes = [g.size for g in grads]
        P = sum(sizes)
        if self._flat is None or self._flat.size != P or self._flat.dtype != dtype:
            self._flat = np.empty(P, dtype)
        flat, MPI = self._flat, self._MPI
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        if self.deterministic:
            for g, o, n in zip(grads, offsets, sizes):
                flat[o : o + n] = g.ravel()
            parts = None
            if self.rank == 0:
                if self._parts is None or self._parts[0].shape != (self.size, P) or self._parts[0].dtype != dtype:
                    self._parts = (np.empty((self.size, P), dtype), np.empty(P, np.float64), np.empty(P, np.float64))
                parts, acc, tmp = self._parts
            self.comm.Gather(flat, parts, root=0)
            if self.rank == 0:
                acc.fill(0.0)
                for r in range(self.size):  # rank order, float64
                    if shares[r]:
                        np.multiply(parts[r], shares[r], out=tmp, dtype=np.float64)
                        acc += tmp
                flat[:] = acc
            self.comm.Bcast(flat, root=0)
        else:
            share = dtype.type(shares[self.rank])
            for g, o, n in zip(grads, offsets, sizes):
                np.multiply(g.ravel(), share, out=flat[o : o + n])
            self.comm.Allreduce(MPI.IN_PLACE, flat, op=MPI.SUM)
        for g, o, n in zip(grads, offsets, sizes):
            g[...] = flat[o : o + n].reshape(g.shape)
        self.stats["steps"] += 1
        self.stats["reduce_seconds"] += time.perf_counter() - t0

    # ------------------------------------------------------------ callbacks
    def call(self, model):
        """The callback dispatcher for :func:`pyrnn.models.training.run_epochs`: hooks run on rank 0,
        then its decision (``stop_training``, the learning rate; after ``on_train_end`` its
        weights and optimizer state) reaches every rank."""

        def call(callbacks, hook, *args):
            if not any(getattr(cb, hook, None) is not None for cb in callbacks):
                return  # nothing to run, nothing to broadcast
            if self.rank == 0:
                training._call(callbacks, hook, *args)
            if hook == "on_train_end":
                state = self.comm.bcast(_training_state(model, optimizer=True) if self.rank == 0 else None, root=0)
                if self.rank:
                    _load_training_state(model, state)
                return
            decision = self.comm.bcast((model.stop_training, model.optimizer.lr) if self.rank == 0 else None, root=0)
            model.stop_training, model.optimizer.lr = decision

        return call

    # ------------------------------------------------------------ evaluation
    def deal(self, items):
        """Rank r's share of ``items``: items r, r + N, r + 2N, ..."""
        return list(items)[self.rank :: self.size]

    def combine(self, means, names):
        """The :class:`~pyrnn.models.training.WeightedMeans` of all ranks' batches, on every rank."""
        vec = self.sum([means.total, means.count, *(means.sums.get(k, 0.0) for k in names)])
        out = training.WeightedMeans()
        out.total, out.count = float(vec[0]), float(vec[1])
        out.sums = {k: float(v) for k, v in zip(names, vec[2:])}
        return out

    # ------------------------------------------------------------ many independent tasks
    def map(self, fn, items):
        """``[fn(item) for item in items]`` with item i computed on rank i mod N; every rank
        receives the list in the items' order (results must be picklable)."""
        self._cap_threads()
        items = list(items)
        mine = {i: fn(items[i]) for i in range(self.rank, len(items), self.size)}
        parts = self.comm.gather(mine, root=0)
        ordered = None
        if self.rank == 0:
            merged = {k: v for part in parts for k, v in part.items()}
            ordered = [merged[i] for i in range(len(items))]
        return self.comm.bcast(ordered, root=0)


class _Batch:
    """One global batch as rank r sees it: ``local`` = its rows, ``step`` = one train_step on them."""

    def __init__(self, strategy, model, rows):
        self.strategy, self.model, self.rows = strategy, model, rows
        self.bounds = strategy.bounds(len(rows))
        r = strategy.rank
        self.local = rows[self.bounds[r] : self.bounds[r + 1]]

    def scope(self):
        """Dropout draws one process's masks for this rank's rows (a no-op for an empty share)."""
        r = self.strategy.rank
        return batch_rows(self.bounds[r], self.bounds[r + 1], self.bounds[-1])

    def counts(self, batch_mask):
        """c_r: the positions each rank's rows select (their rows without a mask)."""
        b = self.bounds
        if batch_mask is None:
            return np.diff(b)
        m = np.asarray(batch_mask)
        return np.array([np.count_nonzero(m[b[r] : b[r + 1]]) for r in range(self.strategy.size)])

    def step(self, step_model, xs, ys, mask, lengths, idx, batch_mask):
        """``train_step(step_model, xs, ys, mask, lengths, idx)`` on this rank's rows ``idx``;
        ``batch_mask`` is the global batch's mask (None: every position counts)."""
        counts, r = self.counts(batch_mask), self.strategy.rank
        reducer = _Reducer(self.strategy, counts, step_model)
        with self.scope():
            if not counts[r] and counts.sum() and self.bounds[r] < self.bounds[r + 1]:
                # rows, but none the loss reads: the forward still draws the dropout masks and
                # gives truncated BPTT its next state; the step then only takes part
                with no_grad():
                    step_model.forward(*[a[idx] for a in xs], **training.batch_forward_kwargs(step_model, lengths, idx))
            result = training.train_step(step_model, xs, ys, mask, lengths, idx, reducer=reducer)
        if self.bounds[-1] and not (np.diff(self.bounds) > 0).all():
            # a rank without rows drew no dropout mask: rank 0 (rows whenever b > 0) has the generators
            _set_rng_states(self.model, self.strategy.comm.bcast(_rng_states(self.model), root=0))
        return result


class _Reducer:
    """What :func:`~pyrnn.models.training.train_step` asks of the ranks (see the module docstring)."""

    def __init__(self, strategy, counts, model):
        total = counts.sum()
        self.strategy, self.metrics = strategy, [m.name for m in model.metrics]
        self.shares = counts / total if total else np.zeros(len(counts))
        # with nothing selected anywhere every rank runs its forward, so the loss raises its error
        self.has_rows = bool(counts[strategy.rank] > 0 or total == 0)

    def scalars(self, value, metrics):
        """The global loss and metrics from this rank's (ignored when it has no rows)."""
        w = self.shares[self.strategy.rank]
        vals = [value, *(metrics[k] ** 2 if k == "rmse" else metrics[k] for k in self.metrics)] if w else []
        vec = self.strategy.sum([w * v for v in vals] if w else np.zeros(1 + len(self.metrics)))
        out = {k: float(np.sqrt(v)) if k == "rmse" else float(v) for k, v in zip(self.metrics, vec[1:])}
        return float(vec[0]), out

    def grads(self, grads):
        self.strategy.reduce_grads(grads, self.shares)


# ---------------------------------------------------------------- state
def _signature(a):
    a = np.asarray(a)
    n = len(a) if a.ndim else 0
    picks = np.unique(np.linspace(0, max(n - 1, 0), min(n, 64)).astype(np.int64)) if n else []
    crc = 0
    for i in picks:
        crc = zlib.crc32(np.ascontiguousarray(a[i]).tobytes(), crc)
    return a.shape, a.dtype.str, crc


def _rng_layers(model):
    return [(str(i), layer) for i, layer in enumerate(model.layers) if hasattr(layer, "rng_state")]


def _rng_states(model):
    return {k: layer.rng_state() for k, layer in _rng_layers(model)}


def _set_rng_states(model, states):
    for k, layer in _rng_layers(model):
        layer.set_rng_state(states[k])


def _training_state(model, optimizer):
    history = None if model.history is None else (model.history.history, model.history.epoch)
    return {"weights": model.state_dict(), "optimizer": model.optimizer.state_dict() if optimizer else None,
            "rng": model._rng.bit_generator.state, "layer_rngs": _rng_states(model),
            "epochs_done": model.epochs_done, "history": history, "lr": model.optimizer.lr}


def _load_training_state(model, state):
    model.load_state_dict(state["weights"])
    if state["optimizer"] is not None:
        model.optimizer.load_state_dict(state["optimizer"])
    model.optimizer.lr = state["lr"]
    model._rng.bit_generator.state = state["rng"]
    _set_rng_states(model, state["layer_rngs"])
    model.epochs_done = state["epochs_done"]
    model.history = None if state["history"] is None else training.History(*state["history"])


_default = {}


def get_strategy(distributed):
    """The strategy for ``distributed``: ``"mpi"`` (one :class:`MPIStrategy` per process,
    deterministic) or an :class:`MPIStrategy`."""
    if isinstance(distributed, MPIStrategy):
        return distributed
    if isinstance(distributed, str) and distributed == "mpi":
        if "mpi" not in _default:
            _default["mpi"] = MPIStrategy()
        return _default["mpi"]
    raise ValueError(f"distributed: expected None, 'mpi' or a pyrnn.distributed.MPIStrategy, got {distributed!r}")
