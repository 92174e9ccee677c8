"""Encoder-decoder (seq2seq) on a translation-like task: reverse digit strings ("3141" -> "1413").
Trained with teacher forcing (the decoder reads the true previous digit), run free at inference
(it reads its own); compared with the same model trained on its own outputs. Writes seq2seq.png
(the two training curves) when matplotlib is installed.

    python examples/seq2seq.py [--quick]
"""

import argparse
from collections import namedtuple

import numpy as np

from pyrnn.plots import save_lines
from pyrnn.tasks import Seq2Seq

# ---------------------------------------------------------------------- digit-string data
#: token ids of the digit-string task: padding, start, end, then the digits 0..9 at 3..12
PAD, START, END, DIGIT0 = 0, 1, 2, 3
DIGIT_VOCAB_SIZE = DIGIT0 + 10

DigitPairs = namedtuple("DigitPairs", ["src", "src_lengths", "tgt", "tgt_lengths"])
DigitPairs.__doc__ = """Padded source/target token arrays of a digit-string task.

src : int64 (N, max_len), digits as ``DIGIT0 + d``, ``PAD`` after each string
src_lengths : int64 (N,), digits per source string
tgt : int64 (N, max_len + 1), the target digits then ``END``, then ``PAD``
tgt_lengths : int64 (N,), target digits + 1 (the end token counts)
"""


def reverse_digits_dataset(n, min_len=3, max_len=6, seed=None):
    """Random digit strings and their reversals (``"3141" -> "1413"``), padded.

    Parameters
    ----------
    n : int, number of pairs
    min_len, max_len : int, 1 <= min_len <= max_len, lengths drawn uniformly in [min_len, max_len]
    seed : int or None

    Returns
    -------
    DigitPairs (src, src_lengths, tgt, tgt_lengths), vocabulary ``DIGIT_VOCAB_SIZE`` on both sides
    """
    n, min_len, max_len = int(n), int(min_len), int(max_len)
    if min_len > max_len:
        raise ValueError(f"max_len: expected a value >= min_len={min_len}, got {max_len}")
    rng = np.random.default_rng(seed)
    lengths = rng.integers(min_len, max_len + 1, n)
    digits = rng.integers(0, 10, (n, max_len))
    valid = np.arange(max_len)[None, :] < lengths[:, None]
    src = np.where(valid, DIGIT0 + digits, PAD)
    # reversal within each string's own length: target step t reads source step len - 1 - t
    back = np.clip(lengths[:, None] - 1 - np.arange(max_len)[None, :], 0, None)
    tgt = np.full((n, max_len + 1), PAD)
    tgt[:, :max_len] = np.where(valid, np.take_along_axis(src, back, axis=1), PAD)
    tgt[np.arange(n), lengths] = END
    return DigitPairs(src.astype(np.int64), lengths.astype(np.int64), tgt.astype(np.int64), (lengths + 1).astype(np.int64))


def digits_to_str(tokens):
    """Token rows -> digit strings, read up to the first ``END``/``PAD`` (a list of str)."""
    out = []
    for row in np.atleast_2d(tokens):
        text = []
        for tok in row:
            if tok < DIGIT0:
                break
            text.append(str(int(tok) - DIGIT0))
        out.append("".join(text))
    return out


def main(quick=False):
    train, test = reverse_digits_dataset(2000, 3, 6, seed=0), reverse_digits_dataset(500, 3, 6, seed=1)
    epochs = 1 if quick else 4
    results, curves = {}, {}
    for how in ("teacher forcing", "own outputs"):
        s2s = Seq2Seq(DIGIT_VOCAB_SIZE, DIGIT_VOCAB_SIZE, emb=16, hidden=64, start_token=START, end_token=END, seed=0)
        s2s.compile("adam", "cross_entropy", lr=1e-2, clip_norm=1.0)
        fit = s2s.fit_teacher_forcing if how == "teacher forcing" else s2s.fit_free_running
        curves[f"trained with {how}"] = fit(*train, epochs=epochs, batch_size=32, seed=0).history["loss"]
        results[how] = s2s.accuracy(*test)
        print(f"trained with {how:15s}: free-running exact match {results[how]['exact']:.3f}, per token {results[how]['token']:.3f}")
    out = s2s.translate(test.src[:3], max_len=8, src_lengths=test.src_lengths[:3])
    for s, o in zip(digits_to_str(test.src[:3]), digits_to_str(out)):
        print(f"  {s} -> {o}")
    save_lines("seq2seq.png", curves, title="Reversing digit strings: training loss", xlabel="epoch", ylabel="cross-entropy",
               styles={k: "-o" for k in curves})
    return results


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one epoch")
    main(ap.parse_args().quick)
