"""The record model shared by every source's parser: ParseResult (good records, bad ones with their reason, kept-but-
shortened ones with what was cut), the size caps it applies (MAX_TEXT_CHARS, MAX_RESPONSES), the conversion errors
that exclude one record (RECORD_ERRORS), a ranked comparison record and its checks, and the type tests the parsers
use on raw fields.
"""
from __future__ import annotations

import dataclasses
import math
import os
from typing import Iterable, List, Optional, Sequence, Tuple


# Per-field cap in characters, applied to every record text before tokenisation. Sequences are at most seq_len
# tokens anyway (byte vocabulary: >= 1 token per character; SentencePiece: roughly 3-5 characters per token), so
# 65,536 characters lose nothing at any sequence length in use, while a single multi-megabyte record can no longer
# blow up the input pipeline (seqio repeats the dataset before its 10,000-example shuffle buffer, which then holds
# many tokenised copies of a small dataset's records: 6 hh_rlhf records plus one 5M-character response reached 23 GB).
MAX_TEXT_CHARS = int(os.environ.get("HHH_MAX_TEXT_CHARS", "65536"))
# Ranked records (a post's comments, a question's answers) keep their first MAX_RESPONSES responses in file order:
# ranked_pairs makes up to n(n-1)/2 pairs of a record.
MAX_RESPONSES = int(os.environ.get("HHH_MAX_RESPONSES", "100"))
# A record whose conversion raises one of these is excluded as malformed (with its id), the file goes on.
RECORD_ERRORS = (TypeError, ValueError, KeyError, AttributeError, IndexError, RecursionError)


def shorten(reason: str, n: int = 200) -> str:
  return reason if len(reason) <= n else reason[:n] + "..."


def encodable(s: str) -> bool:
  """False for text that cannot be written as UTF-8 (lone surrogates, e.g. from a JSON "\\ud800" escape)."""
  try:
    s.encode("utf-8")
    return True
  except UnicodeEncodeError:
    return False


def is_text(v) -> bool:
  return isinstance(v, str)


def is_int(v) -> bool:
  return isinstance(v, int) and not isinstance(v, bool)


def is_number(v) -> bool:
  return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


@dataclasses.dataclass
class ParseResult:
  records: List[dict] = dataclasses.field(default_factory=list)
  bad: List[Tuple[str, str]] = dataclasses.field(default_factory=list)
  truncated: List[Tuple[str, str]] = dataclasses.field(default_factory=list)  # (id, what was cut): kept

  def extend(self, other: "ParseResult"):
    self.records.extend(other.records)
    self.bad.extend(other.bad)
    self.truncated.extend(other.truncated)
    return self

  def derive(self, records: Iterable[dict]) -> "ParseResult":
    """The same bad/truncated lists with other records (pairs, binary samples, one split of them)."""
    return ParseResult(list(records), list(self.bad), list(self.truncated))

  def malformed(self, rid: str, e: BaseException):
    self.bad.append((rid, shorten(f"malformed record ({type(e).__name__}: {e})")))

  def add(self, rec: dict, max_chars: Optional[int] = None, max_responses: Optional[int] = None) -> bool:
    """Appends `rec` after capping its texts (context: keeps its end; responses/choices/response: keep their
    start; at most max_responses responses/choices). What was cut goes to `truncated`. A record that the cap
    leaves with identical responses, or ranked responses of one score, or with text that is not valid Unicode,
    goes to `bad` instead. Returns whether it was kept."""
    max_chars = MAX_TEXT_CHARS if max_chars is None else max_chars
    max_responses = MAX_RESPONSES if max_responses is None else max_responses
    rid, cuts = rec["id"], []
    if isinstance(rec.get("context"), str) and len(rec["context"]) > max_chars:
      cuts.append(f"context {len(rec['context'])} -> {max_chars} chars (kept its end)")
      rec["context"] = rec["context"][-max_chars:]
    if isinstance(rec.get("response"), str) and len(rec["response"]) > max_chars:
      cuts.append(f"response {len(rec['response'])} -> {max_chars} chars (kept its start)")
      rec["response"] = rec["response"][:max_chars]
    for key, score_key in (("responses", "scores"), ("choices", "targets")):
      if key not in rec:
        continue
      texts = list(rec[key])
      if len(texts) > max_responses:
        cuts.append(f"{key}: kept the first {max_responses} of {len(texts)}")
        texts = texts[:max_responses]
        rec[score_key] = list(rec[score_key])[:max_responses]
      for i, t in enumerate(texts):
        if len(t) > max_chars:
          cuts.append(f"{key}[{i}] {len(t)} -> {max_chars} chars (kept its start)")
          texts[i] = t[:max_chars]
      rec[key] = texts
      if cuts and len(set(texts)) < len(texts):
        self.bad.append((rid, f"identical {key} after truncation ({'; '.join(cuts)})"))
        return False
      if cuts and key == "responses" and len(set(rec[score_key])) < 2:
        self.bad.append((rid, f"fewer than two responses with different scores after truncation ({cuts[0]})"))
        return False
    for v in rec.values():
      for t in (v if isinstance(v, list) else [v]):
        if isinstance(t, str) and not encodable(t):
          self.bad.append((rid, "text is not valid Unicode (lone surrogate)"))
          return False
    if cuts:
      self.truncated.append((rid, "; ".join(cuts)))
    self.records.append(rec)
    return True


def comparison(rid: str, context: str, responses: Sequence[str], scores: Sequence[float]) -> dict:
  return {"id": rid, "context": context, "responses": list(responses), "scores": [float(s) for s in scores]}


def check_comparison(rid: str, responses: Sequence[str], bad: list) -> bool:
  if any(not r.strip() for r in responses):
    bad.append((rid, "empty response"))
    return False
  if len(set(responses)) < len(responses):
    bad.append((rid, "identical responses"))
    return False
  return True
