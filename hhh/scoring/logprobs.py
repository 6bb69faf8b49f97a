"""The pure functions of scoring (for jit: objectives, evaluation, the Scorer's programs): log-probabilities of a
row's response, the score head read at its end-of-context token, a prompt's keys/values for the model's
`prefix_cache`, and a comparison batch's scores and pairwise accuracy.

A row is `tokens` = context + response + end-of-context token, with `response_start` and `eoc_index` (hhh.data.rows);
the response is tokens[response_start:eoc_index]. The vocabulary head runs in chunks of `model.logits_chunk`
positions (`next_token_logprobs`), so [..., L, V] f32 logits are never live at once.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from hhh.core import metrics
from hhh.models import transformer

def sequence_logprobs(model, params, tokens, response_start, eoc_index):
  """(sum, mean, count) of log p(response token | everything before it), per sample (`lm_forward`'s sum and count).

  tokens [..., L] = context + response + end-of-context token; response tokens are positions
  response_start .. eoc_index-1 (the end-of-context token itself is not part of the response). Samples with no
  response tokens (padding responses) get sum = mean = count = 0. The vocabulary head runs in chunks of
  `model.logits_chunk` positions (`next_token_logprobs`).
  """
  total, count, _ = lm_forward(model, params, tokens, response_start, eoc_index)
  return total, total / jnp.maximum(count, 1.0), count


def next_token_logprobs(params, hidden, tokens, cfg):
  """(log p(x_{t+1} | x_<=t), x_{t+1} == argmax) for t < L-1 from final hidden states [..., L, D] -> 2 x [..., L-1],
  computed by chunks of `cfg.logits_chunk` positions (the [..., L, V] f32 logits are never live at once)."""
  lead, length = tokens.shape[:-1], tokens.shape[-1]
  flat_t = tokens.reshape(-1, length)
  targets = jnp.concatenate([flat_t[:, 1:], jnp.zeros_like(flat_t[:, :1])], axis=1)  # position t predicts t+1

  def per_chunk(h, t):
    logits = transformer.unembed(params, h, cfg)
    logp = jax.nn.log_softmax(logits, axis=-1)
    return jnp.take_along_axis(logp, t[..., None], axis=-1)[..., 0], jnp.argmax(logits, axis=-1) == t

  nxt, hit = transformer.per_position(per_chunk, (hidden.reshape(flat_t.shape + hidden.shape[-1:]), targets),
                                      cfg.logits_chunk)
  return nxt[:, :-1].reshape(lead + (length - 1,)), hit[:, :-1].reshape(lead + (length - 1,))


def sequence_logprobs_from_token_logprobs(nxt, tokens, response_start, eoc_index):
  """(sum, mean, count) over the response of next-token log-probs nxt [..., L-1] (nxt[t] = log p(x_{t+1}))."""
  t = jnp.arange(1, tokens.shape[-1])  # index of the predicted token
  mask = (t >= response_start[..., None]) & (t < eoc_index[..., None])
  mask = mask.astype(jnp.float32)
  count = mask.sum(-1)
  total = (nxt * mask).sum(-1)
  return total, total / jnp.maximum(count, 1.0), count


def eoc_scores(model, params, tokens, eoc_index):
  """[..., L] rows -> the score head read at each row's end-of-context token [...]."""
  return model.apply({"params": params}, tokens, score_index=eoc_index, return_logits=False)["score"]


def prompt_cache(model, params, tokens):
  """Keys/values of a prompt [layers, P, heads, head_dim] (one sequence), for the model's `prefix_cache`."""
  out = model.apply({"params": params}, jnp.asarray(tokens)[None], return_logits=False, return_cache=True)
  return jax.tree.map(lambda c: c[:, 0], out["cache"])


def comparison_scores(model, params, batch, scorer: str):
  """Model scores [B, K] of a comparison batch: scorer 'score' (score head at the end-of-context token) or
  'mean_logprob' / 'sum_logprob' (the LM as a ranker)."""
  if scorer == "score":
    return eoc_scores(model, params, batch["tokens"], batch["eoc_index"])
  total, mean, _ = sequence_logprobs(model, params, batch["tokens"], batch["response_start"], batch["eoc_index"])
  if scorer == "mean_logprob":
    return mean
  if scorer == "sum_logprob":
    return total
  raise ValueError(f"unknown scorer {scorer!r}; choose score, mean_logprob or sum_logprob")


def lm_forward(model, params, tokens, response_start, eoc_index, prefix_cache=None):
  """[..., L] rows -> (sum log-prob, token count, greedy) of each row's response; pure, for jit. The one forward pass
  of LM scoring (evaluation, best-of-n, `sequence_logprobs`), after the shared prefix `prefix_cache` if given.

  The vocabulary head runs in chunks of `model.logits_chunk` positions: the [N, L, V] f32 logits of a long
  (prompted) evaluation batch are never live at once."""
  out = model.apply({"params": params}, tokens, prefix_cache=prefix_cache, return_logits=False, return_hidden=True)
  nxt, hit = next_token_logprobs(params, out["hidden"], tokens, model.cfg)
  return response_stats(nxt, hit, tokens, response_start, eoc_index)


def response_stats(nxt, hit, tokens, response_start, eoc_index):
  """Sum of log P(tokens[t] | tokens[<t]) over response_start <= t < eoc_index, the number of such tokens, and
  whether every one of them is the argmax prediction (greedy decoding would produce the response: lambada), from
  next-token log-probs and argmax hits [..., L-1] (index t: the prediction of token t+1) -> 3 x [...].
  A response starting at position 0 has no context for its first token, which is then not counted."""
  total, _, count = sequence_logprobs_from_token_logprobs(nxt, tokens, response_start, eoc_index)
  pos = jnp.arange(1, tokens.shape[-1])
  mask = (pos >= response_start[..., None]) & (pos < eoc_index[..., None])
  greedy = jnp.all(hit | ~mask, axis=-1).astype(jnp.float32)
  return total, count, greedy


def comparison_accuracy(model, params, batches, scorer: str, max_batches: int | None = None) -> dict:
  """Pairwise accuracy (hhh.core.metrics.pair_stats; and pairwise ECE for score-head models) of `scorer` over an
  iterable of comparison batches: every (better, worse) pair with different ranks; chance is 0.5."""
  fn = jax.jit(lambda p, b: comparison_scores(model, p, b, scorer))
  scores, ranks, valid = [], [], []
  for i, b in enumerate(batches):
    if max_batches is not None and i >= max_batches:
      break
    b = {k: jnp.asarray(v) for k, v in b.items()}
    scores.append(np.asarray(fn(params, b), np.float32))
    ranks.append(np.asarray(b["score"]))
    valid.append(np.asarray(b["valid"]))
  if not scores:
    return {"accuracy": 0.0, "pairs": 0.0, "mean_better": 0.0, "mean_worse": 0.0, "mean_margin": 0.0}
  s, r, v = (np.concatenate([x.reshape((-1,) + x.shape[-1:]) for x in a]) for a in (scores, ranks, valid))
  st = {k: float(x) for k, x in metrics.pair_stats(s, r, v).items()}
  n = max(st["pairs"], 1.0)
  out = {"accuracy": st["correct"] / n, "pairs": st["pairs"], "mean_better": st["better"] / n,
         "mean_worse": st["worse"] / n, "mean_margin": st["margin"] / n}
  if scorer == "score":
    out["ece"] = float(metrics.pairwise_ece(s, r, v))
  return out

