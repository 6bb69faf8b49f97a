"""The StackExchange data dump's Posts.xml: a question with two or more answers becomes a ranked comparison over its
answers, scored as the paper does (round(log2(1 + upvotes)), +1 when accepted).
"""
from __future__ import annotations

import html
import math
import re
import xml.etree.ElementTree as ET
from typing import Dict, List, Tuple

from hhh.data import dialogue
from hhh.data.sources.reading import decode, numbered_lines
from hhh.data.sources.records import RECORD_ERRORS, ParseResult, check_comparison, comparison


def stackexchange_score(upvotes: int, accepted: bool) -> int:
  """The paper's answer score: round(log2(1 + upvotes)) (+1 if the asker accepted it); negative upvotes -> -1."""
  if upvotes < 0:
    return -1
  return int(round(math.log2(1 + upvotes))) + (1 if accepted else 0)


_TAG = re.compile(r"<[^>]+>")


def html_to_text(s: str) -> str:
  s = re.sub(r"(?i)<br\s*/?>|</p>", "\n", s)
  return html.unescape(_TAG.sub("", s)).strip()


def parse_stackexchange(path: str, site: str = "se") -> ParseResult:
  """Posts.xml (one <row .../> per line). Questions (PostTypeId=1) with >= 2 valid answers (PostTypeId=2) become a
  ranked comparison over their answers scored by `stackexchange_score`."""
  res = ParseResult()
  questions: Dict[str, dict] = {}
  answers: Dict[str, List[Tuple[str, str, int]]] = {}
  for n, raw in numbered_lines(path, res, lambda k: f"{site}-line{k}"):
    line = raw.strip()
    if not line.startswith(b"<row"):
      continue
    m = re.search(rb'\bId="([^"]*)"', line)
    rid = f"{site}-{m.group(1).decode('ascii', 'replace') if m else 'line' + str(n)}"
    try:
      text = decode(line, rid, res.bad)
      if text is None:
        continue
      try:
        a = ET.fromstring(text).attrib
      except ET.ParseError as e:
        res.bad.append((rid, f"malformed XML row: {e}"))
        continue
      kind = a.get("PostTypeId")
      if kind not in ("1", "2"):
        continue  # wiki, tag excerpts, ...: not questions or answers (not bad data; not a candidate)
      if not a.get("Id"):
        res.bad.append((rid, "row without Id"))
        continue
      if kind == "1":
        questions[a["Id"]] = a
      else:
        if "ParentId" not in a:
          res.bad.append((rid, "answer without ParentId"))
          continue
        if "Score" not in a or not re.fullmatch(r"-?\d+", a["Score"]):
          res.bad.append((rid, "missing or non-integer Score"))
          continue
        body = html_to_text(a.get("Body", ""))
        if not body:
          res.bad.append((rid, "empty answer body"))
          continue
        answers.setdefault(a["ParentId"], []).append((a["Id"], body, int(a["Score"])))
    except RECORD_ERRORS as e:
      res.malformed(rid, e)
  for qid, ans in answers.items():
    rid = f"{site}-{qid}"
    try:
      q = questions.get(qid)
      if q is None:
        res.bad.append((rid, f"{len(ans)} answers to a question not in the file"))
        continue
      body = html_to_text(q.get("Body", ""))
      title = html.unescape(q.get("Title", "")).strip()
      if not body and not title:
        res.bad.append((rid, "question without title and body"))
        continue
      if len(ans) < 2:
        res.bad.append((rid, "fewer than two answers"))
        continue
      accepted = q.get("AcceptedAnswerId")
      scores = [stackexchange_score(s, aid == accepted) for aid, _, s in ans]
      if len(set(scores)) < 2:
        res.bad.append((rid, "all answers have the same score"))
        continue
      if not check_comparison(rid, [b for _, b, _ in ans], res.bad):
        continue
      ctx = dialogue.query(f"{title}\n\n{body}" if title else body)
      res.add(comparison(rid, ctx, [dialogue.response(b) for _, b, _ in ans], scores))
    except RECORD_ERRORS as e:
      res.malformed(rid, e)
  for qid, q in questions.items():
    if qid not in answers:
      res.bad.append((f"{site}-{qid}", "question without answers"))
  return res
