"""What every toxicity scorer shares: `ToxicityScorer` (texts in, one probability or None per text out; empty texts
score 0.0 without a model or API call), the check that a probability is one, and an installed package's version for
the scorers' describe().
"""
from __future__ import annotations

import importlib.metadata
from typing import Optional, Sequence


def _is_empty(text: str) -> bool:
  return not text.strip()


def _check_texts(texts: Sequence[str]) -> list[str]:
  if isinstance(texts, (str, bytes)):
    raise TypeError("score() takes a sequence of texts, not one string")
  texts = list(texts)
  for i, t in enumerate(texts):
    if not isinstance(t, str):
      raise TypeError(f"text {i} is {type(t).__name__}, not str")
  return texts


def version(dist: str) -> str:
  try:
    return importlib.metadata.version(dist)
  except importlib.metadata.PackageNotFoundError:
    return "unknown"


def probability(x) -> Optional[float]:
  """A float in [0, 1], or None for anything else (NaN, out of range, not a number)."""
  if isinstance(x, bool):
    return None
  try:
    x = float(x)
  except (TypeError, ValueError):
    return None
  return x if 0.0 <= x <= 1.0 else None


class ToxicityScorer:
  """One toxicity probability in [0, 1] per text, or None where the text could not be scored."""

  name: str = ""

  def score(self, texts: Sequence[str]) -> list[Optional[float]]:
    """Scores in the order of `texts`; empty / whitespace-only texts get 0.0 without any model or API call."""
    texts = _check_texts(texts)
    out: list[Optional[float]] = [0.0] * len(texts)
    idx = [i for i, t in enumerate(texts) if not _is_empty(t)]
    if idx:
      scores = self._score([texts[i] for i in idx])
      if len(scores) != len(idx):
        raise RuntimeError(f"{self.name} scorer returned {len(scores)} scores for {len(idx)} texts")
      for i, s in zip(idx, scores):
        out[i] = s
    return out

  def _score(self, texts: list[str]) -> list[Optional[float]]:
    """Scores for non-empty texts."""
    raise NotImplementedError

  def describe(self) -> dict:
    raise NotImplementedError
