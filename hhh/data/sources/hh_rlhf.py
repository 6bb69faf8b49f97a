"""Anthropic HH-RLHF (jsonl.gz of "chosen"/"rejected" whole dialogues): one comparison per line, the shared context
with the last assistant turns as its two responses.
"""
from __future__ import annotations

from hhh.data import dialogue
from hhh.data.sources.reading import jsonl_objects
from hhh.data.sources.records import RECORD_ERRORS, ParseResult, check_comparison, comparison, is_text


def parse_hh_rlhf(path: str, prefix: str = "hh") -> ParseResult:
  res = ParseResult()
  for rid, o in jsonl_objects(path, prefix, res):
    try:
      if not is_text(o.get("chosen")) or not is_text(o.get("rejected")):
        res.bad.append((rid, "missing chosen or rejected"))
        continue
      try:
        c_ctx, c_resp = dialogue.split_last_response(o["chosen"])
        r_ctx, r_resp = dialogue.split_last_response(o["rejected"])
      except ValueError:
        res.bad.append((rid, "no assistant turn"))
        continue
      if c_ctx != r_ctx:
        res.bad.append((rid, "chosen and rejected have different contexts"))
        continue
      if not check_comparison(rid, [c_resp, r_resp], res.bad):
        continue
      res.add(comparison(rid, c_ctx, [c_resp, r_resp], [1.0, 0.0]))
    except RECORD_ERRORS as e:
      res.malformed(rid, e)
  return res
