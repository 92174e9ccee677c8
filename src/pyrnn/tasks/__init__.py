"""Sequence tasks built from pyrnn's layers and models.

- many-to-one classification: :func:`sequence_classifier` (last valid step -> ``Dense``)
- one-to-many generation: :class:`SequenceDecoder` (a vector -> tokens, captioning-style) and
  :class:`CharLanguageModel` (next-character prediction, then text generation)
- encoder–decoder: :class:`Seq2Seq`, trained with teacher forcing or free-running, greedy
  inference; the digit-string reversal task :func:`reverse_digits_dataset`
"""

from .classification import recurrent_layer, sequence_classifier
from .generation import CharLanguageModel, SequenceDecoder, sample_tokens, shift_right
from .seq2seq import (
    DIGIT_VOCAB_SIZE, END, PAD, START, DigitPairs, Seq2Seq, digits_to_str, reverse_digits_dataset,
)

__all__ = [
    "sequence_classifier", "recurrent_layer", "SequenceDecoder", "CharLanguageModel", "sample_tokens", "shift_right",
    "Seq2Seq", "DigitPairs", "reverse_digits_dataset", "digits_to_str", "PAD", "START", "END", "DIGIT_VOCAB_SIZE",
]
