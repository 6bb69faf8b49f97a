"""Whole evaluation sets: every valid response of a set scored by a Scorer (`score_lm`, `score_pm`), rows sorted by
length and run a fixed number at a time; and the rows of the mutual-information score's log P(a | null context)
(`unconditional_batch`)."""
from __future__ import annotations

import numpy as np

from hhh.data import rows as rows_lib
from hhh.scoring.scorer import Scorer


def unconditional_batch(tokens, response_start, eoc_index, valid, null_ids, eoc_id: int):
  """The same responses after `null_ids` instead of their context: (tokens, response_start, eoc_index) of the
  same shapes. Responses that do not fit keep their first tokens (never happens when len(null) < len(context))."""
  tokens, rs, ei = np.asarray(tokens), np.asarray(response_start), np.asarray(eoc_index)
  lead, L = tokens.shape[:-1], tokens.shape[-1]
  t2, r2, e2 = tokens.reshape(-1, L), rs.reshape(-1), ei.reshape(-1)
  v2 = np.asarray(valid).reshape(-1)
  out = np.zeros_like(t2)
  new_rs = np.zeros_like(r2)
  new_ei = np.zeros_like(e2)
  null = np.asarray(null_ids, np.int32)
  for i in range(t2.shape[0]):
    if v2[i] <= 0:
      continue
    resp = t2[i, r2[i]:e2[i]][: L - 1 - len(null)]
    out[i], new_ei[i], _ = rows_lib.row(null, resp, L, eoc_id)
    new_rs[i] = len(null)
  return out.reshape(tokens.shape), new_rs.reshape(lead), new_ei.reshape(lead)


def _valid_rows(ex):
  """The valid responses of a set as flat rows: (example index, response index, tokens [M, L], response_start,
  eoc_index); padding responses (valid 0) are never run."""
  ii, kk = np.nonzero(np.asarray(ex.valid) > 0)
  return ii, kk, ex.tokens[ii, kk], ex.response_start[ii, kk], ex.eoc_index[ii, kk]


def _batches(eoc_index, batch_size: int) -> list:
  """Row indices in batches of at most `batch_size`, shortest rows first (each pass trims to a tight bucket)."""
  if batch_size < 1:
    raise ValueError(f"eval batch_size must be >= 1 (rows per forward pass), got {batch_size}")
  order = np.argsort(eoc_index, kind="stable")
  return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def score_lm(scorer: Scorer, ex, *, batch_size: int, with_prefix: bool = False, null_ids=None,
             eoc_id: int | None = None) -> dict:
  """LM scores of every response of an evaluation set: {sum, count, mean, greedy[, uncond, mi]} arrays [N, K]
  (zeros for padding responses).

  With `null_ids`, also log P(a | null context) ("uncond") and the mutual information "mi" = sum - uncond.
  Every valid response is one row; rows are sorted by length and scored `batch_size` at a time, every pass on
  exactly `batch_size` rows (the last one padded), so the programs compiled for one set (one per length bucket)
  serve every other set and suite of the same model.
  """
  ii, kk, tok, rs, ei = _valid_rows(ex)
  kind = "lm_prefix" if with_prefix else "lm"
  ones = np.ones(len(ii), np.float32)
  sets = {"cond": (tok, rs, ei)}
  if null_ids is not None:
    sets["uncond"] = unconditional_batch(tok, rs, ei, ones, null_ids, eoc_id)
  plan = [(name, idx) for name, (_, _, e) in sets.items() for idx in _batches(e, batch_size)]
  out = {name: np.zeros(ex.valid.shape, np.float64) for name in ("sum", "count", "greedy", "uncond")}
  with scorer.prepare([(kind, batch_size, scorer.trimmed_length(sets[name][2][idx], ones[idx], tok.shape[-1]))
                       for name, idx in plan]):
    for name, idx in plan:
      t, r, e = (a[idx] for a in sets[name])
      total, count, greedy = scorer.lm(t, r, e, ones[idx], with_prefix=with_prefix, rows=batch_size)
      if name == "cond":
        out["sum"][ii[idx], kk[idx]], out["count"][ii[idx], kk[idx]], out["greedy"][ii[idx], kk[idx]] = \
            total, count, greedy
      else:
        out["uncond"][ii[idx], kk[idx]] = total
  out["mean"] = out["sum"] / np.maximum(out["count"], 1)
  if null_ids is not None:
    out["mi"] = out["sum"] - out["uncond"]
  else:
    del out["uncond"]
  return out


def score_pm(scorer: Scorer, ex, *, batch_size: int) -> dict:
  """Preference/binary model scores of every response: {"score": [N, K]} (zeros for padding responses); rows
  batched as in score_lm."""
  ii, kk, tok, _, ei = _valid_rows(ex)
  ones = np.ones(len(ii), np.float32)
  batches = _batches(ei, batch_size)
  score = np.zeros(ex.valid.shape, np.float64)
  with scorer.prepare([("pm", batch_size, scorer.trimmed_length(ei[idx], ones[idx], tok.shape[-1]))
                       for idx in batches]):
    for idx in batches:
      score[ii[idx], kk[idx]] = scorer.pm(tok[idx], ei[idx], ones[idx], rows=batch_size)
  return {"score": score}
