"""Sequence tasks built from pyrnn's layers and models.

- many-to-one classification: :func:`sequence_classifier` (last valid step -> ``Dense``)
- one-to-many generation: :class:`SequenceDecoder` (a vector -> tokens, captioning-style) and
  :class:`CharLanguageModel` (next-character prediction, then text generation)
- encoder–decoder: :class:`Seq2Seq`, trained with teacher forcing or free-running, greedy
  inference (``examples/seq2seq.py`` trains it on a digit-string reversal task)
"""

from .classification import recurrent_layer, sequence_classifier
from .generation import CharLanguageModel, SequenceDecoder, sample_tokens, shift_right
from .seq2seq import Seq2Seq

__all__ = [
    "sequence_classifier", "recurrent_layer", "SequenceDecoder", "CharLanguageModel", "sample_tokens", "shift_right",
    "Seq2Seq",
]
