"""Scoring with a model: log-probabilities of responses, the score at the end-of-context token, and a prompt's
keys/values computed once; the one place objectives, evaluation, best-of-n and tools get numbers from a model.

A sample of the comparison / multiple-choice / binary families (docs/contracts.md) is `tokens` = context + response
+ end-of-context token, with `response_start` and `eoc_index` (hhh.data.rows). From one forward pass we read

* an LM's log-probability of the response tokens `tokens[response_start:eoc_index]` given everything before them
  (summed, mean and token count), optionally after a fixed prefix (the HHH prompt) whose keys/values
  (`prompt_cache`) are shared by every row; the vocabulary head runs in chunks of `model.logits_chunk` positions, so
  [..., L, V] f32 logits are never live at once;
* a preference (or binary) model's score, read at the end-of-context token (`eoc_scores`).

The mutual-information score of the paper, log P(a|q) - log P(a), needs log P(a) with the query removed; the response
cannot be scored from nothing (the first token needs a context), so P(a) is P(a | null context) with a short
configurable null context (default "\\n\\nAssistant:", the assistant turn marker without the human's query).
`unconditional_batch` builds those rows on the host from the same batch.

The package, one concern per module:
  logprobs  the pure functions (for jit: objectives, evaluation)
  scorer    `Scorer`, which jits them for host batches on a mesh: batches are trimmed to a bucketed length (a multiple
            of 64 covering every end-of-context token) so that short examples do not pay for the longest one;
            buckets bound recompilation; each (kind, rows, length) program is compiled once, ahead of time
  sets      `score_lm` / `score_pm`: whole sets as fixed-size batches of valid rows; `unconditional_batch`
  device    host <-> mesh arrays and the table of jitted functions (shared with hhh.sampling)
Set-level metrics of the scores (pairwise accuracy, MC1/MC2, calibration) are in hhh.core.metrics.
"""
from __future__ import annotations

from hhh.scoring.logprobs import (comparison_accuracy, comparison_scores, eoc_scores, lm_forward,  # noqa: F401
                                  next_token_logprobs, prompt_cache, response_stats, sequence_logprobs,
                                  sequence_logprobs_from_token_logprobs)
from hhh.scoring.scorer import Scorer, batch_length, compile_workers  # noqa: F401
from hhh.scoring.sets import score_lm, score_pm, unconditional_batch  # noqa: F401
