"""The special ids of a vocabulary in use (a config string or a vocabulary): its size, pad, EOS, end-of-context and
LM start ids, and whether it is a Hugging Face tokenizer (whose id 0 can be text). The rules are in
`hhh.data.vocab`'s docstring.
"""
from __future__ import annotations

from hhh.data.vocab.hf import HF_PREFIX, PyHFTokenizerVocabulary
from hhh.data.vocab.ids import EOS_ID, PAD_ID
from hhh.data.vocab.names import get_vocabulary


def _as_vocab(vocab):
  return get_vocabulary(vocab) if isinstance(vocab, str) else vocab


def is_hf(vocab) -> bool:
  """Whether `vocab` (a config string or a vocabulary) is a Hugging Face tokenizer ("hf:PATH")."""
  if isinstance(vocab, str):
    return vocab.startswith(HF_PREFIX)
  return isinstance(vocab, PyHFTokenizerVocabulary) or isinstance(getattr(vocab, "py", None), PyHFTokenizerVocabulary)


def vocab_size(vocab) -> int:
  """Number of ids the model's embedding must cover (model.vocab_size >= this), eoc token included."""
  return int(_as_vocab(vocab).vocab_size)


def pad_id(vocab=None) -> int:
  """The vocabulary's padding id (0 for byte/spm; hhh.data.vocab's docstring: hf). None: the default "byte"."""
  return PAD_ID if vocab is None else int(_as_vocab(vocab).pad_id)


def eos_id(vocab=None) -> int:
  """The vocabulary's end-of-sequence id (1 for byte/spm; the tokenizer's EOS for hf). None: the default "byte"."""
  return EOS_ID if vocab is None else int(_as_vocab(vocab).eos_id)


def eoc_id(vocab) -> int:
  """The end-of-context token id (the preference model's score is read at this token)."""
  return vocab_size(vocab) - 1


def zero_is_text(vocab) -> bool:
  """Whether id 0 can be a text token. False for byte/spm (0 is their pad id, which seqio's packing and loss weights
  treat as padding); True for hf vocabularies (e.g. GPT-2's "!"), whose LM features are packed with shifted ids
  (hhh/data/features.py)."""
  return is_hf(vocab)


def lm_start_id(vocab) -> int:
  """The decoder input in front of the first token of every packed LM document: 0 for byte/spm (seqio's
  make_autoregressive_inputs convention; their pad id); for hf the tokenizer's BOS token, else its EOS (GPT-2/Pythia
  separate pretraining documents with "<|endoftext|>")."""
  v = _as_vocab(vocab)
  if not is_hf(v):
    return 0
  return int(v.bos_id) if v.bos_id is not None else int(v.eos_id)
