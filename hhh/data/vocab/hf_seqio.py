"""HFTokenizerVocabulary: a Hugging Face tokenizer as a seqio.Vocabulary, for the tf.data pipeline. The class is
defined on first use (seqio imports TensorFlow); its Python side is a PyHFTokenizerVocabulary, its TF ops run that
through tf.numpy_function.
"""
from __future__ import annotations

import functools
from typing import Iterable, Optional, Sequence

import numpy as np

from hhh.data.vocab.hf import PyHFTokenizerVocabulary
from hhh.data.vocab.ids import NUM_EXTRA_IDS
from hhh.data.vocab.seqio_import import import_seqio


@functools.lru_cache(maxsize=None)
def hf_seqio_class():
  """HFTokenizerVocabulary, a seqio.Vocabulary (defined on first use: seqio imports TensorFlow)."""
  seqio = import_seqio("the 'hf:' vocabulary's seqio class")
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  class HFTokenizerVocabulary(seqio.Vocabulary):
    """A Hugging Face tokenizer.json as a seqio.Vocabulary (rules: hhh/data/vocab/hf.py's docstring).

    The Python side is a `PyHFTokenizerVocabulary` (`.py`); the TF side (`encode_tf`, `decode_tf`,
    `encode_strings_tf`) runs it through tf.numpy_function, so it works inside tf.data maps (not in graphs that
    must be serialised). Ids: the tokenizer's, then the end-of-context token (extra id 0) = the tokenizer's size."""

    def __init__(self, path_or_py):
      self.py = (path_or_py if isinstance(path_or_py, PyHFTokenizerVocabulary)
                 else PyHFTokenizerVocabulary(path_or_py))
      super().__init__(extra_ids=NUM_EXTRA_IDS)

    @property
    def path(self) -> str:
      return self.py.path

    @property
    def tokenizer(self):
      return self.py.tokenizer

    @property
    def dummy_prefix(self) -> bool:
      return self.py.dummy_prefix

    @property
    def bos_id(self) -> Optional[int]:
      return self.py.bos_id

    @property
    def eos_id(self) -> Optional[int]:
      return self.py.eos_id

    @property
    def pad_id(self) -> int:
      return self.py.pad_id

    @property
    def unk_id(self) -> Optional[int]:
      return self.py.unk_id

    @property
    def _base_vocab_size(self) -> int:
      return self.py.size

    def _encode(self, s) -> Sequence[int]:
      return self.py.encode(s)

    def _decode(self, ids) -> str:
      return self.py.decode(ids)

    def decode(self, ids: Iterable[int]) -> str:
      # Not seqio's: that maps ids >= the tokenizer's size (the eoc token) to UNK, which this tokenizer renders.
      return self.py.decode(ids)

    def _encode_tf(self, s):
      s = tf.convert_to_tensor(s, tf.string)
      if s.shape.rank != 0:
        return self.encode_strings_tf(s)
      ids = tf.numpy_function(lambda b: np.asarray(self.py.encode(np.asarray(b).item()), np.int32), [s], tf.int32,
                              stateful=False)
      ids.set_shape([None])
      return ids

    def encode_strings_tf(self, strings):
      """A vector of strings [N] -> ragged [N, None] int32 ids (one batched call of the tokenizer)."""
      strings = tf.reshape(tf.convert_to_tensor(strings, tf.string), [-1])

      def enc(arr):
        rows = self.py.encode_batch(np.asarray(arr, dtype=object).reshape(-1).tolist())
        flat = np.asarray([i for r in rows for i in r], np.int32)
        return flat, np.asarray([len(r) for r in rows], np.int64)

      flat, lengths = tf.numpy_function(enc, [strings], (tf.int32, tf.int64), stateful=False)
      flat.set_shape([None])
      lengths.set_shape(strings.shape)
      return tf.RaggedTensor.from_row_lengths(flat, lengths)

    def _decode_tf(self, ids):
      ids = tf.convert_to_tensor(ids)

      def dec(arr):
        arr = np.asarray(arr)
        rows = arr.reshape((-1, arr.shape[-1]))
        out = np.asarray([self.py.decode(r.tolist()).encode("utf-8") for r in rows], dtype=object)
        return out.reshape(arr.shape[:-1])

      out = tf.numpy_function(dec, [ids], tf.string, stateful=False)
      out.set_shape(ids.shape[:-1])
      return out

    def decode_tf(self, ids):
      # Through the Python decode (first EOS, pad, eoc) rather than seqio's TF clean-up (eoc -> UNK).
      return self._decode_tf(ids)

    def __eq__(self, other):
      return isinstance(other, HFTokenizerVocabulary) and other.py == self.py

    def __hash__(self):
      return hash(self.py)

    def __str__(self):
      return (f"HFTokenizerVocabulary({self.py.path!r}, size={self.py.size}, eos_id={self.eos_id}, "
              f"pad_id={self.pad_id}, eoc_id={self.py.eoc_id})")

    __repr__ = __str__

  HFTokenizerVocabulary.__module__ = __package__  # hhh.data.vocab, whose __getattr__ gives the class
  HFTokenizerVocabulary.__qualname__ = "HFTokenizerVocabulary"
  return HFTokenizerVocabulary
