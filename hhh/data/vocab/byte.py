"""The byte vocabulary without TensorFlow: PyByteVocabulary, seqio.ByteVocabulary's ids, sizes and decoding in pure
Python (what `get_vocabulary("byte")` returns where seqio is not installed).
"""
from __future__ import annotations

from typing import Iterable, List, Union

from hhh.data.vocab.ids import EOS_ID, PAD_ID, UNK_ID


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
