"""Reddit pushshift dumps (one JSON object per line): a post's top-level comments ranked by karma, with the post's
title and text from the submission dumps when given.
"""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

from hhh.data import dialogue
from hhh.data.sources.reading import jsonl_objects
from hhh.data.sources.records import RECORD_ERRORS, ParseResult, check_comparison, comparison, encodable, is_int, \
    is_text, shorten

_DELETED = ("[deleted]", "[removed]")


def parse_reddit(comment_paths: Sequence[str], submission_paths: Sequence[str] = ()) -> ParseResult:
  """Top-level comments of the same post ranked by karma (score). Context = the post (title + selftext) when a
  submission dump is given, else the post's title is unknown and the post id is used as a minimal context."""
  res = ParseResult()
  posts: Dict[str, str] = {}
  for p in submission_paths:
    for rid, o in jsonl_objects(p, "reddit-post", res):
      try:
        pid = o.get("id")
        if not is_text(pid) or not pid:
          res.bad.append((rid, shorten(f"submission id missing or not a string: {pid!r}")))
          continue
        rid = f"reddit-post-t3_{pid}"
        title, selftext = o.get("title"), o.get("selftext")
        if not is_text(title) or not title.strip():
          res.bad.append((rid, "submission title missing, empty or not a string"))
          continue
        if selftext is not None and not is_text(selftext):
          res.bad.append((rid, "submission selftext is not a string"))
          continue
        selftext = "" if selftext is None or selftext.strip() in _DELETED else selftext
        post = (title + ("\n\n" + selftext if selftext else "")).strip()
        if not encodable(post):
          res.bad.append((rid, "text is not valid Unicode (lone surrogate)"))
          continue
        posts["t3_" + pid] = post
      except RECORD_ERRORS as e:
        res.malformed(rid, e)
  groups: Dict[str, List[Tuple[str, str, int]]] = {}
  for p in comment_paths:
    for rid, o in jsonl_objects(p, "reddit", res):
      oid = o.get("id")
      cid = f"reddit-{oid}" if (is_text(oid) and oid) or is_int(oid) else rid
      try:
        if not is_text(o.get("link_id")) or not is_text(o.get("body")):
          res.bad.append((cid, "missing link_id or body"))
          continue
        if not is_text(o.get("parent_id")):
          res.bad.append((cid, "missing parent_id"))
          continue
        if o["parent_id"] != o["link_id"]:
          continue  # replies to comments are not answers to the post (not bad data; not a candidate)
        if not is_int(o.get("score")):
          res.bad.append((cid, "missing or non-integer score"))
          continue
        body = o["body"].strip()
        if not body or body in _DELETED:
          res.bad.append((cid, "empty or deleted body"))
          continue
        if not encodable(body):
          res.bad.append((cid, "text is not valid Unicode (lone surrogate)"))
          continue
        groups.setdefault(o["link_id"], []).append((cid, body, o["score"]))
      except RECORD_ERRORS as e:
        res.malformed(cid, e)
  for link, cs in groups.items():
    rid = f"reddit-{link}"
    try:
      if len(cs) < 2:
        res.bad.append((rid, "fewer than two comments"))
        continue
      if len({s for _, _, s in cs}) < 2:
        res.bad.append((rid, "all comments have the same karma"))
        continue
      if not check_comparison(rid, [b for _, b, _ in cs], res.bad):
        continue
      ctx = dialogue.query(posts.get(link, f"Reddit post {link}"))
      res.add(comparison(rid, ctx, [dialogue.response(b) for _, b, _ in cs], [float(s) for _, _, s in cs]))
    except RECORD_ERRORS as e:
      res.malformed(rid, e)
  return res
