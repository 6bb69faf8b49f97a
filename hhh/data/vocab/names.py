"""`get_vocabulary`: the vocabulary a config string names ("byte", "spm:PATH", "hf:PATH"), cached: seqio's classes
when seqio is installed, the pure-Python equivalents of "byte" and "hf:" without it.
"""
from __future__ import annotations

import functools
import os

from hhh.core.errors import ConfigError
from hhh.data.vocab.byte import PyByteVocabulary
from hhh.data.vocab.hf import HF_PREFIX, PyHFTokenizerVocabulary
from hhh.data.vocab.hf_seqio import hf_seqio_class
from hhh.data.vocab.ids import EOS_ID, NUM_EXTRA_IDS, PAD_ID
from hhh.data.vocab.seqio_import import have_seqio, import_seqio


@functools.lru_cache(maxsize=None)
def _py_hf(path: str) -> PyHFTokenizerVocabulary:
  return PyHFTokenizerVocabulary(path)


@functools.lru_cache(maxsize=None)
def get_vocabulary(name: str = "byte"):
  """Returns the vocabulary named by a config string ("byte", "spm:PATH" or "hf:PATH").

  A seqio.Vocabulary when seqio is installed; without seqio, "byte" gives the equivalent PyByteVocabulary and
  "hf:PATH" the equivalent PyHFTokenizerVocabulary."""
  if name == "byte":
    if not have_seqio():
      return PyByteVocabulary(extra_ids=NUM_EXTRA_IDS)
    import seqio  # pylint: disable=g-import-not-at-top
    return seqio.ByteVocabulary(extra_ids=NUM_EXTRA_IDS)
  if name.startswith("spm:"):
    path = name[len("spm:"):]
    if not path:
      raise ValueError(f"vocabulary {name!r}: expected 'spm:PATH'")
    seqio = import_seqio(f"vocabulary {name!r}")
    if "://" not in path and not os.path.isfile(path):
      raise ConfigError(f"vocabulary {name!r}: SentencePiece model {path} does not exist (train one with "
                        f"tools/train_vocab.py)")
    vocab = seqio.SentencePieceVocabulary(path, extra_ids=NUM_EXTRA_IDS)
    if vocab.tokenizer.pad_id() != PAD_ID or vocab.tokenizer.eos_id() != EOS_ID:
      raise ValueError(
          f"SentencePiece model {path} must use pad_id={PAD_ID}, eos_id={EOS_ID} (train it with "
          f"tools/train_vocab.py); it has pad_id={vocab.tokenizer.pad_id()} eos_id={vocab.tokenizer.eos_id()}")
    return vocab
  if name.startswith(HF_PREFIX):
    py = _py_hf(name[len(HF_PREFIX):])
    return hf_seqio_class()(py) if have_seqio() else py
  raise ValueError(f"unknown vocabulary {name!r}: use 'byte', 'spm:PATH' or 'hf:PATH'")
