"""Vocabularies selected by a config string, and the special token ids in ONE place.

    "byte"        -> seqio.ByteVocabulary (zero set-up; 256 bytes + pad/eos/unk + the extra ids below)
    "spm:PATH"    -> seqio.SentencePieceVocabulary(PATH) (train one with tools/train_vocab.py)

Special tokens (identical for every vocabulary):
    pad_id = 0 (seqio convention; also the padding of every feature family)
    eos_id = 1 (seqio convention)
    eoc_id = the END-OF-CONTEXT token appended to every sample of a preference model; its score is read there.
             It is seqio's extra id 0, i.e. the LAST id of the vocabulary: vocab.vocab_size - 1.

This module imports seqio (and with it TensorFlow) only when a vocabulary is asked for, and not at all for "byte"
on a machine without seqio: there `get_vocabulary("byte")` is `PyByteVocabulary`, a pure-Python copy of
seqio.ByteVocabulary's Python side (encode, decode, vocab_size and the special ids; no TF ops), so the objectives'
prompt tokenisation (context distillation, evaluation prompts) runs in a TensorFlow-free core
(tests/test_core_imports.py). "spm:PATH" always needs seqio. The tf.data pipeline always uses seqio's classes.
"""
from __future__ import annotations

import functools
from typing import Iterable, List, Union

PAD_ID = 0
EOS_ID = 1
UNK_ID = 2
# One extra id is reserved at the top of the vocabulary: the end-of-context token.
NUM_EXTRA_IDS = 1


class PyByteVocabulary:
  """seqio.ByteVocabulary(extra_ids) without TensorFlow: id = UTF-8 byte + 3 (0 pad, 1 EOS, 2 UNK), then the
  extra ids. Same ids, sizes and decoding as seqio's (tested against it in tests/test_data_core.py)."""

  _NUM_SPECIAL = 3
  _BYTES = 256

  def __init__(self, extra_ids: int = 0):
    self._extra_ids = int(extra_ids)

  pad_id = PAD_ID
  eos_id = EOS_ID
  unk_id = UNK_ID
  bos_id = None

  @property
  def extra_ids(self) -> int:
    return self._extra_ids

  @property
  def vocab_size(self) -> int:
    return self._NUM_SPECIAL + self._BYTES + self._extra_ids

  def encode(self, s: Union[str, bytes]) -> List[int]:
    s = s.decode() if isinstance(s, bytes) else s
    return [b + self._NUM_SPECIAL for b in s.encode("utf-8")]

  def decode(self, ids: Iterable[int]) -> str:
    """Up through the first EOS; ids beyond the bytes (extra ids) become UNK; special ids are dropped."""
    base = self._NUM_SPECIAL + self._BYTES
    clean = [int(i) for i in ids]
    clean = [UNK_ID if i >= base else i for i in clean]
    if EOS_ID in clean:
      clean = clean[:clean.index(EOS_ID) + 1]
    return bytes(i - self._NUM_SPECIAL for i in clean if self._NUM_SPECIAL <= i < base).decode("utf-8", "ignore")

  def __eq__(self, other):
    return type(other) is type(self) and other.extra_ids == self.extra_ids

  def __hash__(self):
    return hash((type(self), self._extra_ids))


def _seqio(what: str):
  try:
    import seqio  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(f"{what} needs seqio (pip install seqio); without it only the 'byte' vocabulary is "
                      f"available (as hhh.data.vocab.PyByteVocabulary)") from e
  return seqio


@functools.lru_cache(maxsize=None)
def get_vocabulary(name: str = "byte"):
  """Returns the vocabulary named by a config string ("byte" or "spm:PATH").

  A seqio.Vocabulary when seqio is installed; without seqio, "byte" gives the equivalent PyByteVocabulary."""
  if name == "byte":
    try:
      import seqio  # pylint: disable=g-import-not-at-top
    except ImportError:
      return PyByteVocabulary(extra_ids=NUM_EXTRA_IDS)
    return seqio.ByteVocabulary(extra_ids=NUM_EXTRA_IDS)
  if name.startswith("spm:"):
    path = name[len("spm:"):]
    if not path:
      raise ValueError(f"vocabulary {name!r}: expected 'spm:PATH'")
    seqio = _seqio(f"vocabulary {name!r}")
    vocab = seqio.SentencePieceVocabulary(path, extra_ids=NUM_EXTRA_IDS)
    if vocab.tokenizer.pad_id() != PAD_ID or vocab.tokenizer.eos_id() != EOS_ID:
      raise ValueError(
          f"SentencePiece model {path} must use pad_id={PAD_ID}, eos_id={EOS_ID} (train it with "
          f"tools/train_vocab.py); it has pad_id={vocab.tokenizer.pad_id()} eos_id={vocab.tokenizer.eos_id()}")
    return vocab
  raise ValueError(f"unknown vocabulary {name!r}: use 'byte' or 'spm:PATH'")


def _as_vocab(vocab):
  return get_vocabulary(vocab) if isinstance(vocab, str) else vocab


def vocab_size(vocab) -> int:
  """Number of ids the model's embedding must cover (model.vocab_size >= this), eoc token included."""
  return int(_as_vocab(vocab).vocab_size)


def pad_id(vocab=None) -> int:
  del vocab
  return PAD_ID


def eos_id(vocab=None) -> int:
  del vocab
  return EOS_ID


def eoc_id(vocab) -> int:
  """The end-of-context token id (the preference model's score is read at this token)."""
  return vocab_size(vocab) - 1
