"""A row's generated tokens as text: cut at end-of-sequence and before the first stop string (`finish_row`), and the
text a stream may show so far (`hold_back`: what could still become a stop string is held back)."""

from __future__ import annotations

from typing import Optional, Sequence

from hhh.sampling.settings import Sample

def finish_row(vocab, eos_id: int, tokens, logprobs, stop: Sequence[str], prompt_index: int = 0,
               sample_index: int = 0) -> Sample:
  """A row's generated tokens and log-probs (as many as it produced) -> Sample: up to and including the first
  end-of-sequence token, then the text cut before the first stop string and the tokens to those within it."""
  tokens = [int(t) for t in tokens]
  logprobs = [float(x) for x in logprobs]
  reason = "length"
  if eos_id in tokens:
    n = tokens.index(eos_id) + 1
    tokens, logprobs, reason = tokens[:n], logprobs[:n], "eos"
  text = vocab.decode(tokens)
  cut = first_stop(text, stop)
  if cut is not None:
    text, reason = text[:cut], "stop"
    n = _tokens_within(vocab, tokens, text)
    tokens, logprobs = tokens[:n], logprobs[:n]
  return Sample(int(prompt_index), int(sample_index), text, tokens, logprobs, reason)


def first_stop(text: str, stop: Sequence[str]) -> Optional[int]:
  """Index of the first occurrence of any stop string in text (None if none occurs)."""
  hits = [i for i in (text.find(s) for s in stop if s) if i >= 0]
  return min(hits) if hits else None


def hold_back(text: str, stop: Sequence[str]) -> str:
  """text without its longest suffix that is a proper prefix of a stop string (it may become one)."""
  keep = len(text)
  for s in stop:
    for n in range(min(len(s) - 1, len(text)), 0, -1):
      if text.endswith(s[:n]):
        keep = min(keep, len(text) - n)
        break
  return text[:keep]


def _tokens_within(vocab, tokens, text: str) -> int:
  """The largest n such that decode(tokens[:n]) is a prefix of text (decoding is prefix-monotone)."""
  lo, hi = 0, len(tokens)
  while lo < hi:
    mid = (lo + hi + 1) // 2
    if text.startswith(vocab.decode(tokens[:mid])):
      lo = mid
    else:
      hi = mid - 1
  return lo

