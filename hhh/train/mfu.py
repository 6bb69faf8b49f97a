"""Model FLOPs utilisation's numerator: the analytic training FLOPs of one example (hhh.core.flops) and its tokens,
from the model's shape and the objective's feature family; the loop divides achieved by peak FLOP/s."""

from __future__ import annotations

from hhh.core import flops as flops_lib
from hhh.data import specs
from hhh.train.state import Setup


def flops_per_example(setup: Setup) -> tuple[float, int]:
  """(analytic training FLOPs per example, tokens per example) for MFU: tokens from the feature family's spec, the
  output head the vocabulary for an LM and one score for a score-head model."""
  mc, cfg = setup.model_config, setup.config
  seq = int(cfg.data.seq_len)
  head = 1 if mc.score_head else mc.vocab_size
  per_token = flops_lib.train_flops_per_token(mc.non_embedding_params(), mc.n_layers, mc.d_model, seq, head,
                                              attn_width=mc.n_heads * mc.d_head)
  tokens = specs.tokens_per_example(setup.objective.family, seq, k=int(cfg.data.num_responses))
  return per_token * tokens, tokens
