"""ELI5 (jsonl: q_id, title, selftext, answers {a_id, text, score}): a question's answers ranked by score."""
from __future__ import annotations

from hhh.data import dialogue
from hhh.data.sources.reading import jsonl_objects
from hhh.data.sources.records import RECORD_ERRORS, ParseResult, check_comparison, comparison, is_int, is_text


def parse_eli5(path: str) -> ParseResult:
  res = ParseResult()
  for rid, o in jsonl_objects(path, "eli5", res):
    qid = o.get("q_id")
    rid = f"eli5-{qid}" if (is_text(qid) and qid) or is_int(qid) else rid
    try:
      ans = o.get("answers")
      if not is_text(o.get("title")) or not isinstance(ans, dict) or not isinstance(ans.get("text"), list):
        res.bad.append((rid, "missing title or answers"))
        continue
      if o.get("selftext") is not None and not is_text(o["selftext"]):
        res.bad.append((rid, "selftext is not a string"))
        continue
      texts, scores = ans["text"], ans.get("score")
      if not all(is_text(t) for t in texts):
        res.bad.append((rid, "answer text that is not a string"))
        continue
      if not isinstance(scores, list) or len(scores) != len(texts) or not all(is_int(s) for s in scores):
        res.bad.append((rid, "missing or malformed answer scores"))
        continue
      if any(s < 0 for s in scores):
        res.bad.append((rid, "negative answer score"))
        continue
      if len(texts) < 2 or len(set(scores)) < 2:
        res.bad.append((rid, "fewer than two answers with different scores"))
        continue
      texts = [t.strip() for t in texts]
      if not check_comparison(rid, texts, res.bad):
        continue
      q = o["title"] + ("\n\n" + o["selftext"] if o.get("selftext") else "")
      res.add(comparison(rid, dialogue.query(q), [dialogue.response(t) for t in texts], [float(s) for s in scores]))
    except RECORD_ERRORS as e:
      res.malformed(rid, e)
  return res
