"""Learn to Summarize (summarize-from-feedback comparisons/*.json, JSON lines): the preferred summary of a TL;DR post
or a CNN/DM article over the other, grouped by post or article for the hash split.
"""
from __future__ import annotations

import zlib

from hhh.data import dialogue
from hhh.data.sources.reading import jsonl_objects
from hhh.data.sources.records import RECORD_ERRORS, ParseResult, check_comparison, comparison, is_int, is_text

# comparisons/ holds the TL;DR batches (info: id, post, title, subreddit) and the CNN/DM ones (info: id = the sha1
# of the article's URL, article, title, site = "cnn" / "dailymail"; no post), each line
# {"info", "summaries": [{"text", "policy", "note"}, x2], "choice", "worker", "batch", "split", "extra"}
# (github.com/openai/summarize-from-feedback README and summarize_from_feedback/datasets/cnndm.py).

def summarize_context(info: dict) -> str:
  if is_text(info.get("post")):
    return dialogue.query(f"Summarize this post.\n\nTitle: {info.get('title') or ''}\n\n{info['post']}")
  return dialogue.query(f"Summarize this news article.\n\nTitle: {info.get('title') or ''}\n\n{info['article']}")


def parse_summarize(path: str) -> ParseResult:
  """Record ids are "tldr-{info.id}:{file}:{line}" (a Reddit post) or "cnndm-{info.id}:{file}:{line}" (a CNN/DM
  article): the hash split groups every comparison of one post / article (its id, or a hash of its text when the id
  is missing), so a post or an article is never in both splits. The context is the post, or for CNN/DM the article
  (with its title; `site` is not used)."""
  res = ParseResult()
  for rid, o in jsonl_objects(path, "tldr", res):
    try:
      info, sums, choice = o.get("info"), o.get("summaries"), o.get("choice")
      if (not isinstance(info, dict) or not (is_text(info.get("post")) or is_text(info.get("article")))
          or not isinstance(sums, list) or len(sums) != 2 or not is_int(choice) or choice not in (0, 1)):
        res.bad.append((rid, "missing info.post (or info.article), two summaries or choice"))
        continue
      if info.get("title") is not None and not is_text(info["title"]):
        res.bad.append((rid, "info.title is not a string"))
        continue
      kind, text = ("tldr", info["post"]) if is_text(info.get("post")) else ("cnndm", info["article"])
      post_id = info.get("id")
      if is_text(post_id) and post_id:
        group = f"{kind}-" + post_id.replace(":", "_")
      else:
        group = f"{kind}-{'post' if kind == 'tldr' else 'article'}"
        group += f"{zlib.crc32(text.encode('utf-8', 'surrogatepass')):08x}"
      rid = group + rid[len("tldr"):]
      texts = [s.get("text") if isinstance(s, dict) else None for s in sums]
      if not all(is_text(t) for t in texts):
        res.bad.append((rid, "summary without text"))
        continue
      texts = [t.strip() for t in texts]
      if not check_comparison(rid, texts, res.bad):
        continue
      better, worse = texts[choice], texts[1 - choice]
      res.add(comparison(rid, summarize_context(info), [dialogue.response(better), dialogue.response(worse)],
                         [1.0, 0.0]))
    except RECORD_ERRORS as e:
      res.malformed(rid, e)
  return res
