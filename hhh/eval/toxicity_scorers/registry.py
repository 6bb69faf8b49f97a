"""The scorers by name (SCORERS, the eval config's `toxicity_scorer`) and `make_scorer`, which builds one or says why
it cannot run here.
"""
from __future__ import annotations

from hhh.core.errors import ConfigError
from hhh.eval.toxicity_scorers.base import ToxicityScorer
from hhh.eval.toxicity_scorers.detoxify import DetoxifyScorer
from hhh.eval.toxicity_scorers.offline import OfflineScorer
from hhh.eval.toxicity_scorers.perspective import PerspectiveScorer

SCORERS = ("offline", "perspective", "detoxify")


def make_scorer(name: str, *, perspective_url: str = "", perspective_qps: float = 1.0, perspective_retries: int = 5,
                perspective_timeout_s: float = 30.0, detoxify_model: str = "original", detoxify_checkpoint: str = "",
                detoxify_config_dir: str = "") -> ToxicityScorer:
  """The scorer called `name` (one of SCORERS); raises ConfigError when it cannot run here, saying what to do."""
  if name == "offline":
    return OfflineScorer()
  if name == "perspective":
    return PerspectiveScorer(perspective_url, qps=perspective_qps, retries=perspective_retries,
                             timeout_s=perspective_timeout_s)
  if name == "detoxify":
    return DetoxifyScorer(detoxify_model, detoxify_checkpoint, detoxify_config_dir)
  raise ConfigError(f"unknown toxicity scorer {name!r}: choose one of {', '.join(SCORERS)}")
