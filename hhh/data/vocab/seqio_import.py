"""seqio on demand: importing it imports TensorFlow, so the vocabularies ask for it only when a seqio vocabulary is
needed, and tell whether it is installed (without it, "byte" and "hf:" have pure-Python equivalents).
"""
from __future__ import annotations


def import_seqio(what: str):
  try:
    import seqio  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(f"{what} needs seqio (pip install seqio); without it only the 'byte' and 'hf:' vocabularies "
                      f"are available (as hhh.data.vocab.PyByteVocabulary / PyHFTokenizerVocabulary)") from e
  return seqio


def have_seqio() -> bool:
  try:
    import seqio  # pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    return False
  return True
