"""The row rule: a sample of the comparison / multiple-choice / binary families is context + response +
end-of-context token in `length` slots, right-padded with 0. When it does not fit, the response keeps at most
length - 1 tokens (its END is cut) and the context its LAST length - 1 - len(response) tokens (its BEGINNING is
cut), so the response and the end-of-context token always survive (docs/contracts.md). `truncation` is the rule,
for any array library (the data pipeline's TensorFlow, hhh.data.features.build_sample); `row` builds a row on the
host (best-of-n's and the code suite's preference-model rows, scoring's null-context rows). TF-free."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def truncation(n_context, n_response, length: int, minimum=min, maximum=max) -> tuple:
  """(index of the first context token kept, number of response tokens kept) of a context of n_context tokens and a
  response of n_response in a row of `length` slots. minimum/maximum: the caller's elementwise ops (tf.minimum,
  tf.maximum for tensors)."""
  keep = minimum(n_response, length - 1)
  return maximum(n_context - (length - 1 - keep), 0), keep


def row(context: Sequence[int], response: Sequence[int], length: int, eoc_id: int) -> tuple:
  """context + response + [eoc_id] under the rule -> (tokens [length] int32, eoc_index, truncated: 1 when either
  was cut, else 0). The response starts at eoc_index - (its tokens kept)."""
  start, keep = truncation(len(context), len(response), length)
  c, r = list(context)[start:], list(response)[:keep]
  toks = np.zeros((length,), np.int32)
  full = c + r + [eoc_id]
  toks[:len(full)] = full
  return toks, len(c) + len(r), int(len(c) < len(context) or len(r) < len(response))
