"""The LM conditions' samplers, shared by the suites that sample (toxicity, code): one hhh.sampling.Sampler per
distinct set of parameters (plain and prompt share the model; prompt adds the HHH prompt as a shared prefix)."""
from __future__ import annotations

from typing import Sequence
from hhh import sampling


def lm_samplers(conds: Sequence, vocab: str, batch_size: int) -> dict:
  """{condition name: Sampler} for every LM condition of hhh.eval.run (the pm condition does not sample)."""
  out, by_params = {}, {}
  for c in conds:
    if c.is_pm:
      continue
    s = c.scorer
    base = by_params.get(id(s.params))
    if base is None:
      base = by_params[id(s.params)] = sampling.Sampler(s.model, s.params, s.mesh, s.rules, vocab,
                                                        batch_size=int(batch_size))
    out[c.name] = base.with_prefix(s.prefix_tokens) if c.with_prefix else base
  return out
