"""Vocabularies selected by a config string, and the special token ids in ONE place.

    "byte"        -> seqio.ByteVocabulary (zero set-up; 256 bytes + pad/eos/unk + the extra ids below)
    "spm:PATH"    -> seqio.SentencePieceVocabulary(PATH) (train one with tools/train_vocab.py)

Special tokens (identical for every vocabulary):
    pad_id = 0 (seqio convention; also the padding of every feature family)
    eos_id = 1 (seqio convention)
    eoc_id = the END-OF-CONTEXT token appended to every sample of a preference model; its score is read there.
             It is seqio's extra id 0, i.e. the LAST id of the vocabulary: vocab.vocab_size - 1.
"""
from __future__ import annotations

import functools

import seqio

PAD_ID = 0
EOS_ID = 1
# One extra id is reserved at the top of the vocabulary: the end-of-context token.
NUM_EXTRA_IDS = 1


@functools.lru_cache(maxsize=None)
def get_vocabulary(name: str = "byte") -> seqio.Vocabulary:
  """Returns the vocabulary named by a config string ("byte" or "spm:PATH")."""
  if name == "byte":
    return seqio.ByteVocabulary(extra_ids=NUM_EXTRA_IDS)
  if name.startswith("spm:"):
    path = name[len("spm:"):]
    if not path:
      raise ValueError(f"vocabulary {name!r}: expected 'spm:PATH'")
    vocab = seqio.SentencePieceVocabulary(path, extra_ids=NUM_EXTRA_IDS)
    if vocab.tokenizer.pad_id() != PAD_ID or vocab.tokenizer.eos_id() != EOS_ID:
      raise ValueError(
          f"SentencePiece model {path} must use pad_id={PAD_ID}, eos_id={EOS_ID} (train it with "
          f"tools/train_vocab.py); it has pad_id={vocab.tokenizer.pad_id()} eos_id={vocab.tokenizer.eos_id()}")
    return vocab
  raise ValueError(f"unknown vocabulary {name!r}: use 'byte' or 'spm:PATH'")


def _as_vocab(vocab) -> seqio.Vocabulary:
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
