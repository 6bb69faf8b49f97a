"""How to sample (`Settings`: the command-line settings, checked) and what comes out (`Sample`: a row's text,
tokens, log-probs and why it stopped, one of STOP_REASONS)."""

from __future__ import annotations

import dataclasses
import math

from hhh.core.errors import ConfigError

STOP_REASONS = ("eos", "stop", "length")



@dataclasses.dataclass(frozen=True)
class Settings:
  """How to sample (every field can change between calls without recompiling, except max_new_tokens and the
  number/length of stop strings, which are shapes)."""
  max_new_tokens: int = 128
  temperature: float = 1.0  # 0 = greedy
  top_k: int = 0  # 0 = off
  top_p: float = 1.0  # 1 = off
  num_samples: int = 1
  stop: tuple = ()
  seed: int = 0

  def __post_init__(self):
    object.__setattr__(self, "stop", tuple(self.stop))
    bad = []
    if int(self.max_new_tokens) < 1:
      bad.append(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
    if not float(self.temperature) >= 0 or not math.isfinite(float(self.temperature)):
      bad.append(f"temperature must be >= 0 (0 = greedy), got {self.temperature}")
    if int(self.top_k) < 0:
      bad.append(f"top_k must be >= 0 (0 = off), got {self.top_k}")
    if not 0 < float(self.top_p) <= 1:
      bad.append(f"top_p must be in (0, 1] (1 = off), got {self.top_p}")
    if int(self.num_samples) < 1:
      bad.append(f"num_samples must be >= 1, got {self.num_samples}")
    if any(not isinstance(s, str) or not s for s in self.stop):
      bad.append(f"stop must be a tuple of non-empty strings, got {self.stop!r}")
    if bad:
      raise ConfigError("; ".join(bad))

  @classmethod
  def from_config(cls, config) -> "Settings":
    stop = config.stop
    if isinstance(stop, str):  # a single string given on the command line
      stop = (stop,) if stop else ()
    return cls(max_new_tokens=int(config.max_new_tokens), temperature=float(config.temperature),
               top_k=int(config.top_k), top_p=float(config.top_p), num_samples=int(config.num_samples),
               stop=tuple(stop), seed=int(config.seed))

  def describe(self) -> dict:
    return {"max_new_tokens": self.max_new_tokens, "temperature": self.temperature, "top_k": self.top_k,
            "top_p": self.top_p, "num_samples": self.num_samples, "stop": list(self.stop), "seed": self.seed}


@dataclasses.dataclass
class Sample:
  prompt_index: int
  sample_index: int
  text: str
  tokens: list  # generated token ids (an end-of-sequence token last when stop_reason == "eos")
  logprobs: list  # log P(token) under the unmodified model distribution, one per token
  stop_reason: str  # eos | stop (a stop string) | length (max_new_tokens)

  @property
  def sum_logprob(self) -> float:
    return float(sum(self.logprobs))
