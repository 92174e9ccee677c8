"""Long sequences: truncated backpropagation through time (``fit_tbptt``), stateful
streaming inference (``stream``), and ``peak_memory_of`` to measure what they save.

Legend: N = samples, B = batch, T = time, F = input features, O = output features,
k1 = steps between updates, k2 = steps backpropagated (k2 >= k1), t_i = end of window i.

Full BPTT keeps every step's activations until the backward: memory grows with T.
Truncated BPTT (Williams & Peng 1990, BPTT(k2; k1)) walks the sequence instead: every k1
steps it runs forward over the last k2 steps from the state saved k2 steps back, puts
the loss on the last k1 steps, backpropagates through those k2 steps only (nothing flows
into earlier windows: the saved state is a constant) and updates the weights. Memory
follows k2, not T.

The model contract (what :func:`recurrent_model` builds): a functional :class:`Model`
with inputs ``[x, *initial_state]`` and outputs ``[y, *final_state]``, x (B, T, F),
y (B, T, O) one output per step, the states as the recurrent layer has them (h, or h
and c for LSTM; None means zeros). The loss is ``model.loss`` (the first one if it is a
list), applied to y only.
"""

from __future__ import annotations

import tracemalloc
from contextlib import nullcontext

import numpy as np

from .._checks import check_int, check_ndim
from ..grad_mode import inference, no_grad
from ..layers.recurrent import Recurrent
from ..layers.sequence import TimeDistributed
from .graph import Input, Model
from .training import WeightedMeans, check_data, forward_loss, metric_values, run_epochs, train_step


def recurrent_model(layer, head=None):
    """A :class:`Model` with the truncated-BPTT contract: ``[x, h0 (, c0)] -> [y, h_T (, c_T)]``.

    Parameters
    ----------
    layer : RNN, LSTM, GRU (or ``Dilated`` of one), unidirectional for streaming
    head : None or a layer applied at every step (wrapped in ``TimeDistributed`` unless it
        already is one), e.g. ``Dense(H, O)``; None outputs the recurrent layer's y

    Returns
    -------
    Model
        inputs ``[x (B, T, F), h0 (L*D, B, H)(, c0)]``, outputs ``[y (B, T, O), h_T(, c_T)]``
    """
    if not isinstance(layer, Recurrent):
        raise TypeError(f"layer: expected an RNN, LSTM, GRU or Dilated layer, got {type(layer).__name__}")
    names = ("h0", "c0") if layer.has_cell_state else ("h0",)
    x, states = Input(name="x"), [Input(name=n) for n in names]
    y, final = layer(x, initial_state=tuple(states) if layer.has_cell_state else states[0])
    if head is not None:
        y = (head if isinstance(head, TimeDistributed) else TimeDistributed(head))(y)
    return Model([x, *states], [y, *(final if layer.has_cell_state else (final,))])


def _n_states(model):
    """Number of state arrays of a model with the contract ``[x, *state] -> [y, *state]``."""
    if not isinstance(model, Model):
        raise TypeError(f"model: expected a functional pyrnn.Model (see recurrent_model), got {type(model).__name__}")
    n_in, n_out = len(model.inputs), len(model.outputs)
    if n_in < 2 or n_in != n_out:
        raise ValueError("model: expected inputs [x, *initial_state] and outputs [y, *final_state] "
                         f"(as recurrent_model builds), got {n_in} inputs and {n_out} outputs")
    return n_in - 1


class _Window:
    """One truncated-BPTT update, seen by :func:`training.train_step` as one batch of a model:
    ``forward`` runs the window from the carried state and returns the outputs of its last
    ``n_loss`` steps; ``backward`` stops at the window's start (no gradient to the state)."""

    def __init__(self, model, loss, n_loss, state):
        self.model, self.loss, self.n_loss, self.state = model, loss, n_loss, state
        self.optimizer, self.metrics = model.optimizer, model.metrics
        self.clip_norm, self.clip_value = model.clip_norm, model.clip_value
        self.zero_grad, self.param_grad_pairs = model.zero_grad, model.param_grad_pairs
        self.clear_saved = model.clear_saved

    # y, *final = model(x[s:t], *state);  the loss sees y[t - n_loss : t]
    def forward(self, x):
        y, *self.final = self.model.forward(x, *self.state)
        self._y_meta = (y.shape, y.dtype)
        return y[:, -self.n_loss:]

    # dy_window = [0 | dy];  dL/d final = 0 (the truncation);  dL/d state is dropped
    def backward(self, dy, input_grad=True):
        full = np.zeros(*self._y_meta)
        full[:, -self.n_loss:] = dy
        self.model.backward(full, *[None] * len(self.final), input_grad=input_grad)


def _window_ends(T, k1):
    return [min(t, T) for t in range(k1, T + k1, k1)]


def _check_sequences(x, y, mask, what=""):
    x, y = np.asarray(x), np.asarray(y)
    check_ndim(f"{what}x", x, 3, "(samples, time, features)")
    if x.shape[1] == 0:
        raise ValueError(f"{what}x: expected at least one time step, got shape {x.shape}")
    if y.ndim < 2 or y.shape[:2] != x.shape[:2]:
        raise ValueError(f"{what}y: expected shape ({x.shape[0]}, {x.shape[1]}, ...) (samples, time) as {what}x, "
                         f"got {y.shape}")
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != x.shape[:2]:
            raise ValueError(f"{what}mask: expected shape {x.shape[:2]} (samples, time), got {mask.shape}")
    return x, y, mask


def _tbptt_steps(model, loss, x, y, mask, rows_list, ends, k2, n_states, strategy=None):
    """The windows of one epoch, lazily: ``(weight, train_step(...))`` per optimizer step.
    With a ``strategy`` (MPI) this rank walks its share of each batch's rows."""
    for rows in rows_list:
        n_rows, batch = len(x[rows]), None
        if strategy is not None:
            batch = strategy.batch(model, np.arange(len(x))[rows])
            rows = batch.local
        state = [None] * n_states
        for i, t_end in enumerate(ends):
            t_prev = ends[i - 1] if i else 0
            s, s_next = max(0, t_end - k2), (max(0, ends[i + 1] - k2) if i + 1 < len(ends) else t_end)
            carry = state
            if s < s_next < t_end and len(x[rows]):
                with no_grad(), (nullcontext() if batch is None else batch.scope()):
                    carry = list(model.forward(x[rows, s:s_next], *state)[1:])
            window = _Window(model, loss, t_end - t_prev, state)
            m = None if mask is None else mask[rows, t_prev:t_end]
            args = (window, [x[rows, s:t_end]], [y[rows, t_prev:t_end]], m, None, slice(None))
            if batch is None:
                result = train_step(*args)
            else:
                result = batch.step(*args, None if mask is None else mask[batch.rows, t_prev:t_end])
            state = getattr(window, "final", state) if s_next == t_end else carry  # no final: this rank had no rows
            yield n_rows * (t_end - t_prev), result


def evaluate_sequences(model, x, y, k1, batch_size=None, mask=None, strategy=None):
    """Mean loss and metrics of a ``[x, *state] -> [y, *state]`` model over whole sequences, the
    state carried from zeros at step 0 to the end, in inference mode (eval behaviour, nothing
    saved for backward, no layer attribute changed).

    The sequences run in chunks of ``k1`` steps (and ``batch_size`` samples) and the means are
    weighted as ``fit_tbptt``'s ``loss``: each chunk's loss by its samples x steps (without a
    mask: the mean over all steps). ``fit_tbptt`` reports it as ``val_loss`` (``val_`` metrics).
    With a ``strategy`` (fit_tbptt's validation under MPI) the ranks share the batches.
    """
    n_states = _n_states(model)
    k1 = check_int("k1", k1, 1)
    x, y, mask = _check_sequences(x, y, mask)
    N = check_data(model, [x], [y], mask, None)
    batch_size = N if batch_size is None else check_int("batch_size", batch_size, 1)
    loss = model.loss[0] if isinstance(model.loss, (list, tuple)) else model.loss
    ends = _window_ends(x.shape[1], k1)
    means = WeightedMeans()
    starts = range(0, N, batch_size)
    with inference():
        for start in (starts if strategy is None else strategy.deal(starts)):
            rows = slice(start, start + batch_size)
            state = [None] * n_states
            for i, t_end in enumerate(ends):
                t_prev = ends[i - 1] if i else 0
                chunk = _Window(model, loss, t_end - t_prev, state)
                m = None if mask is None else mask[rows, t_prev:t_end]
                ys = [y[rows, t_prev:t_end]]
                value, preds, _, m, targets = forward_loss(chunk, [x[rows, t_prev:t_end]], ys, m, None, slice(None))
                means.add(len(x[rows]) * (t_end - t_prev), value, metric_values(chunk, preds, targets, m))
                state = chunk.final
    if strategy is not None:
        means = strategy.combine(means, [metric.name for metric in model.metrics])
    return means.logs()


def fit_tbptt(model, x, y, k1, k2=None, epochs=1, batch_size=None, mask=None, validation_data=None,
              callbacks=(), verbose=0, shuffle=False, seed=None, distributed=None):
    """Train with truncated BPTT(k2; k1) over long sequences; returns the model's :class:`History`.

    Parameters
    ----------
    model : compiled :class:`Model` with inputs ``[x, *initial_state]`` and outputs
        ``[y, *final_state]`` (see :func:`recurrent_model`)
    x : array (N, T, F)
    y : array (N, T, ...), the target of every step (as ``model.loss`` takes it)
    k1 : int, steps between two updates; the loss of one update covers the last k1 steps
    k2 : int >= k1, steps backpropagated (default k1)
    epochs : int
    batch_size : int or None (all N samples at once); each batch walks the whole time axis
    mask : None or (N, T) for the loss, sliced like y
    validation_data : None, ``(x_val, y_val)`` or ``(x_val, y_val, mask_val)``, sequences
        (N_val, T_val, ...); after every epoch :func:`evaluate_sequences` runs them from a zero
        state to their end (the state carried over the whole sequence, in inference mode)
    callbacks : as for ``fit`` (:mod:`pyrnn.callbacks`); ``on_batch_end`` after every window
    verbose : 0 silent (the default), 1 progress bar over the windows, 2 one line per epoch
    shuffle : deal the samples to the batches in a new random order every epoch (the model's
        generator); False keeps their order. Time is never shuffled.
    seed : reseed that generator first (None continues it)
    distributed : None, ``"mpi"`` or a :class:`pyrnn.distributed.MPIStrategy`: each batch's rows
        are shared over the ranks of ``mpiexec -n N`` (every rank passes the same data), equal
        to one process with the same ``batch_size`` (see :mod:`pyrnn.distributed`)

    Returns
    -------
    History
        per epoch: ``loss`` (mean of the window losses weighted by their steps), metrics,
        ``grad_norm`` (mean over updates), the ``val_`` entries, ``lr``

    Notes
    -----
    Windows end at t_i = k1, 2 k1, ... (the last at T, possibly shorter). Window i runs the
    model forward over ``[max(0, t_i - k2), t_i)`` from the state saved there (zeros for the
    first window of every batch and epoch), the loss (mean-reduced, as compiled) on
    ``[t_{i-1}, t_i)``, one backward, gradient clipping and one optimizer step (the same
    code as ``fit``'s batches, in the same epoch loop: callbacks, ``stop_training``,
    validation, History). The state at ``t_{i+1} - k2`` is saved for the next window
    before the update: the window's final state if k2 = k1, else by a gradient-free
    forward over ``[max(0, t_i - k2), t_{i+1} - k2)``; the k2 - k1 overlapping steps are
    recomputed with the updated weights. With k1 = k2 = T this is one full-BPTT step.
    A window whose loss or gradient norm is not finite is not applied and training stops:
    ``FloatingPointError``, or cleanly with ``callbacks.TerminateOnNaN()``.
    """
    if distributed is None:
        return _fit_tbptt(model, x, y, k1, k2, epochs, batch_size, mask, validation_data, callbacks, verbose,
                          shuffle, seed, None)
    from ..distributed import get_strategy

    strategy = get_strategy(distributed)
    with strategy.guard("fit_tbptt"):
        return _fit_tbptt(model, x, y, k1, k2, epochs, batch_size, mask, validation_data, callbacks,
                          strategy.verbose(verbose), shuffle, seed, strategy)


def _fit_tbptt(model, x, y, k1, k2, epochs, batch_size, mask, validation_data, callbacks, verbose, shuffle, seed,
               strategy):
    if model.loss is None or model.optimizer is None:
        raise ValueError("fit_tbptt: expected a compiled model (call model.compile(optimizer=..., loss=...)), got none")
    n_states = _n_states(model)
    k1 = check_int("k1", k1, 1)
    k2 = k1 if k2 is None else check_int("k2", k2, 1)
    if k2 < k1:
        raise ValueError(f"k2: expected at least k1={k1} (the loss steps must lie in the backpropagated window), got {k2}")
    epochs = check_int("epochs", epochs, 1)
    if verbose not in (0, 1, 2):
        raise ValueError(f"verbose: expected 0, 1 or 2, got {verbose!r}")
    x, y, mask = _check_sequences(x, y, mask)
    N = check_data(model, [x], [y], mask, None)
    batch_size = N if batch_size is None else check_int("batch_size", batch_size, 1)
    validate = None
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError("validation_data: expected (x_val, y_val) or (x_val, y_val, mask_val), "
                             f"got {type(validation_data).__name__}")
        vx, vy, vm = _check_sequences(*validation_data, *(None,) * (3 - len(validation_data)), what="val_")
        check_data(model, [vx], [vy], vm, None)

        def validate():
            return evaluate_sequences(model, vx, vy, k1, batch_size=batch_size, mask=vm, strategy=strategy)

    loss = model.loss[0] if isinstance(model.loss, (list, tuple)) else model.loss
    ends = _window_ends(x.shape[1], k1)
    if seed is not None:
        model._rng = np.random.default_rng(seed)
    if strategy is not None:  # every rank starts from rank 0's weights, optimizer and generators
        strategy.begin(model, [x, y, *([] if mask is None else [mask])], who="fit_tbptt")
    n_batches = -(-N // batch_size)

    def epoch_steps(epoch):
        model.train()
        if shuffle:
            order = model._rng.permutation(N)
            rows_list = [order[i : i + batch_size] for i in range(0, N, batch_size)]
        else:
            rows_list = [slice(i, i + batch_size) for i in range(0, N, batch_size)]
        return n_batches * len(ends), _tbptt_steps(model, loss, x, y, mask, rows_list, ends, k2, n_states, strategy)

    return run_epochs(model, epochs, epoch_steps, callbacks=callbacks, validate=validate, verbose=verbose,
                      who="fit_tbptt", unit="window", strategy=strategy)


def stream(model, chunks, state=None):
    """Stateful streaming inference: yield ``(y, state)`` per chunk, the state carried along.

    Parameters
    ----------
    model : a unidirectional RNN/LSTM/GRU layer, or a :class:`Model` with the contract
        ``[x, *initial_state] -> [y, *final_state]`` (see :func:`recurrent_model`)
    chunks : iterable of arrays (B, t_k, F), any t_k; a 2-D chunk (B, F) is one step
        (as ``layer.step``) and gives y (B, O)
    state : initial state (None = zeros): the layer's (h or (h, c)), or the model's list of states

    Yields
    ------
    y : ndarray (B, t_k, O), or (B, O) for a 2-D chunk
    state : the state after the chunk (pass it on to continue the stream later)

    Notes
    -----
    Concatenating the outputs equals one ``forward`` over the whole sequence. Every chunk runs
    in eval mode (no dropout) and keeps nothing for backward. ``step()`` on a recurrent layer is
    the one-step form: ``y_t, state = layer.step(x_t, state)``; like ``forward`` it keeps what a
    backward would need unless called inside ``pyrnn.no_grad()``, so stream with it there.
    """
    is_layer = isinstance(model, Recurrent)
    if is_layer:
        if model.bidirectional:
            raise ValueError("model: expected a unidirectional layer (the reverse direction needs the future), "
                             "got bidirectional=True")
        if getattr(model, "dilation", 1) != 1:
            raise ValueError(f"model: expected dilation 1 (a Dilated layer's state holds one phase only), got {model.dilation}")
    else:
        n_states = _n_states(model)
        state = [None] * n_states if state is None else list(state)
    for chunk in chunks:
        chunk = np.asarray(chunk)
        one_step = chunk.ndim == 2
        if one_step:
            chunk = chunk[:, None]
        with inference():  # eval behaviour, nothing saved, no layer attribute touched
            if is_layer:
                y, state = model.forward(chunk, state)
            else:
                y, *state = model.forward(chunk, *state)
        yield (y[:, 0] if one_step else y), state


def peak_memory_of(fn, *args, **kwargs):
    """Peak bytes allocated while ``fn(*args, **kwargs)`` runs, above what was allocated before.

    Measured with :mod:`tracemalloc`, which sees Python objects and NumPy's array buffers
    (NumPy reports its allocations to it); memory that native code allocates on its own is not
    counted (pyrnn's kernels write into NumPy arrays). Starts tracing if it is off and stops it
    again afterwards.
    """
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        fn(*args, **kwargs)
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        if started:
            tracemalloc.stop()


__all__ = ["evaluate_sequences", "fit_tbptt", "peak_memory_of", "recurrent_model", "stream"]
