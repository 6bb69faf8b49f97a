"""Padded shapes: sequence lengths and row counts rounded up to a multiple, so that a few compiled programs serve
every batch (a new shape is a new compilation). `BUCKET` is the step of the padded sequence lengths of scoring,
best-of-n and sampling; `round_up` is also the attention kernels' rounding to their block sizes."""

from __future__ import annotations

BUCKET = 64  # sequence lengths are padded to a multiple of this (bounds recompilation)


def round_up(n: int, m: int) -> int:
  """The smallest multiple of m that is >= n."""
  return -(-n // m) * m


def bucket_length(need: int, cap: int, bucket: int = BUCKET) -> int:
  """The smallest multiple of `bucket` (at least one bucket) that holds `need` tokens, capped at `cap`."""
  return min(cap, max(bucket, round_up(need, bucket)))
