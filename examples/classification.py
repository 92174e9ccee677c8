"""Many-to-one classification: an RNN reads an image row by row (image classification with a
recurrent network) and a real 1-D signal, then its last step -> Dense. Writes classification.png
(the training curves) when matplotlib is installed.

- 8x8 handwritten digits (bundled, UCI, CC BY 4.0): 8 time steps of 8 pixels each;
- yearly sunspots: from the last 11 years, is next year's number higher than this year's?

    python examples/classification.py [--quick]
"""

import argparse

import numpy as np

import pyrnn
from pyrnn.plots import save_lines
from pyrnn.tasks import sequence_classifier


def digits(quick):
    x, y = pyrnn.datasets.load_digits(as_sequences=True)
    order = np.random.default_rng(0).permutation(len(y))
    x, y = x[order], y[order]
    n_train = 1400
    model = sequence_classifier(8, 64, 10, cell="gru", seed=0).compile("adam", "cross_entropy", lr=1e-2, metrics=["accuracy"])
    h = model.fit(x[:n_train], y[:n_train], epochs=2 if quick else 30, batch_size=32, seed=0, verbose=0)
    acc = model.evaluate(x[n_train:], y[n_train:])["accuracy"]
    print(f"digits read row by row: test accuracy {acc:.3f} on {len(y) - n_train} held-out images (chance 0.1)")
    return acc, h


def sunspot_direction(quick):
    s = pyrnn.datasets.load_sunspots().values.astype(np.float32)
    L = 11
    x = np.stack([s[i : i + L] for i in range(len(s) - L)])[:, :, None] / 100
    y = (s[L:] > s[L - 1 : -1]).astype(np.int64)        # next year higher than the last one seen
    n_train = int(0.8 * len(y))                           # the tail is the test: no look-ahead
    model = sequence_classifier(1, 32, 2, cell="lstm", seed=1).compile("adam", "cross_entropy", lr=1e-2, metrics=["accuracy"])
    h = model.fit(x[:n_train], y[:n_train], epochs=2 if quick else 60, batch_size=16, seed=0, verbose=0)
    acc = model.evaluate(x[n_train:], y[n_train:])["accuracy"]
    majority = max(np.mean(y[n_train:]), 1 - np.mean(y[n_train:]))
    print(f"sunspots, rising next year?: test accuracy {acc:.3f} (majority class {majority:.3f})")
    return acc, majority, h


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a couple of epochs")
    quick = ap.parse_args().quick
    *_, h_digits = digits(quick)
    *_, h_sun = sunspot_direction(quick)
    save_lines("classification.png", {"digits, row by row": h_digits.history["loss"], "sunspots rising?": h_sun.history["loss"]},
               title="Training loss (cross-entropy)", xlabel="epoch", ylabel="loss")
