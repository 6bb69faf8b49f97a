"""Ranked records to preference data: every pair of differently scored responses (better first), the paper's
binary PMP transformation of a pair ("GOOD:"/"BAD:" prefixed to each response), and pairs to binary samples.
"""
from __future__ import annotations

import itertools
from typing import Iterable, List

from hhh.data.sources.records import comparison


def ranked_pairs(rec: dict) -> List[dict]:
  """Every pair of responses with different scores, better first (ties give no pair)."""
  out = []
  rs, ss = rec["responses"], rec["scores"]
  for i, j in itertools.combinations(range(len(rs)), 2):
    if ss[i] == ss[j]:
      continue
    a, b = (i, j) if ss[i] > ss[j] else (j, i)
    out.append(comparison(f"{rec['id']}:{a}>{b}", rec["context"], [rs[a], rs[b]], [1.0, 0.0]))
  return out


def binary_pmp(pair: dict) -> List[dict]:
  """The paper's binary PMP: a pair A > B becomes two independent comparisons
  "GOOD:" + A > "BAD:" + A  and  "BAD:" + B > "GOOD:" + B  (the label is prefixed to the response)."""
  a, b = pair["responses"][0], pair["responses"][1]
  if pair["scores"][0] <= pair["scores"][1]:
    raise ValueError(f"{pair['id']}: binary_pmp expects the better response first")
  return [comparison(pair["id"] + ":A", pair["context"], ["GOOD:" + a, "BAD:" + a], [1.0, 0.0]),
          comparison(pair["id"] + ":B", pair["context"], ["BAD:" + b, "GOOD:" + b], [1.0, 0.0])]


def comparisons_to_binary(records: Iterable[dict]) -> List[dict]:
  """Pairs (better first) -> binary samples: better labelled 1, worse 0."""
  out = []
  for r in records:
    out.append({"id": r["id"] + ":good", "context": r["context"], "response": r["responses"][0], "label": 1.0})
    out.append({"id": r["id"] + ":bad", "context": r["context"], "response": r["responses"][1], "label": 0.0})
  return out
