"""Long sequences: truncated BPTT (forward k1 steps, backpropagate k2, carry the state across
chunks), its peak memory against full BPTT, and stateful streaming inference.

Task: predict the next value of a long noisy sine; one sequence per sample, T steps each.
Writes long_sequences.png (the TBPTT training curve) when matplotlib is installed.

    python examples/long_sequences.py [--quick]
"""

import argparse

import numpy as np

import pyrnn
from pyrnn.layers import Dense
from pyrnn.plots import save_lines


def data(n, T, seed=0):
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 2 * np.pi, (n, 1))
    t = np.arange(T + 1)[None, :]
    s = (np.sin(2 * np.pi * t / 50 + phase) + 0.1 * rng.standard_normal((n, T + 1))).astype(np.float32)
    return s[:, :-1, None], s[:, 1:, None]


def build(seed=0):
    model = pyrnn.recurrent_model(pyrnn.LSTM(1, 32, seed=seed, forget_bias=1.0), Dense(32, 1, seed=seed + 1))
    return model.compile("adam", "mse", lr=3e-3, clip_norm=1.0)


def main(quick=False):
    T = 500 if quick else 5000
    x, y = data(4, T)
    pyrnn.fit_tbptt(build(), x[:, :10], y[:, :10], k1=10)  # warm-up: first-call imports would count too
    full = pyrnn.models.peak_memory_of(lambda: pyrnn.fit_tbptt(build(), x, y, k1=T))
    truncated = pyrnn.models.peak_memory_of(lambda: pyrnn.fit_tbptt(build(), x, y, k1=100))
    print(f"peak memory of one training pass over T={T}: full BPTT {full / 1e6:.1f} MB, "
          f"TBPTT(k1=k2=100) {truncated / 1e6:.2f} MB ({truncated / full:.3f} of full)")

    model = build()
    pyrnn.fit_tbptt(model, x, y, k1=50, k2=100, epochs=2 if quick else 10)
    print(f"TBPTT(k1=50, k2=100) loss per epoch: {[round(v, 4) for v in model.history.history['loss']]}")
    save_lines("long_sequences.png", {"TBPTT(k1=50, k2=100)": model.history.history["loss"]},
               title=f"Next value of a noisy sine, T={T}: training loss", xlabel="epoch", ylabel="MSE",
               styles={"TBPTT(k1=50, k2=100)": "-o"})

    lstm = model.layers[0]
    xs, _ = data(2, 300, seed=1)
    with pyrnn.no_grad():
        whole, _ = lstm.forward(xs)
    pieces, state = [], None
    for chunk in np.array_split(xs, 7, axis=1):          # a stream arriving in uneven pieces
        y_chunk, state = next(pyrnn.stream(lstm, [chunk], state))
        pieces.append(y_chunk)
    print(f"streaming in 7 chunks equals the whole-sequence forward: max |diff| = "
          f"{np.abs(np.concatenate(pieces, axis=1) - whole).max():.2e}")
    return full, truncated


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a shorter sequence and fewer epochs")
    main(ap.parse_args().quick)
