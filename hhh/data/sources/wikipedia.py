"""Wikipedia's MediaWiki XML revision history: a revision that reverts vandalism makes the original lines preferred
over the vandalised ones, read as a stream holding only a page's last three revisions.
"""
from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
import zlib
from typing import List, Optional, Tuple

from hhh.data.sources.reading import open_any, stream_errors
from hhh.data.sources.records import RECORD_ERRORS, ParseResult, check_comparison, comparison, shorten

REVERT_COMMENT = re.compile(r"(?i)vandal|^reverted edits by|\brvv\b")


def _changed_span(old: str, new: str, window: int = 300) -> Tuple[str, str, str]:
  """(shared text before the change, old span, new span), spans extended to whole lines, prefix <= window."""
  p = 0
  while p < min(len(old), len(new)) and old[p] == new[p]:
    p += 1
  s = 0
  while s < min(len(old), len(new)) - p and old[len(old) - 1 - s] == new[len(new) - 1 - s]:
    s += 1
  start = old.rfind("\n", 0, p) + 1
  end_old = old.find("\n", len(old) - s)
  end_new = new.find("\n", len(new) - s)
  end_old = len(old) if end_old < 0 else end_old
  end_new = len(new) if end_new < 0 else end_new
  return old[max(0, start - window):start], old[start:end_old], new[start:end_new]


def parse_wikipedia(path: str) -> ParseResult:
  """A revision r_k whose comment marks a vandalism revert (REVERT_COMMENT) and whose text equals r_{k-2}'s text
  reverts the vandal edit r_{k-1}: the original lines (from r_{k-2}) are preferred over the vandalised ones.
  Only the last three revisions of a page are held in memory (a page's history can be gigabytes).

  Record ids are "wiki-{page id}:{vandal revision id}": the hash split groups by the part before the first ':', so
  every revert of a page lands in the same split (a page's reverts share its text). A page without an <id> is
  grouped by a hash of its title ("wiki-title{crc32}"), a revision without one is named by its position in the file
  ("rev{n}")."""
  res = ParseResult()
  name = os.path.basename(path)
  title: Optional[str] = None
  page_id: Optional[str] = None
  in_page = in_revision = False
  revs: List[Tuple[Optional[str], str, Optional[str]]] = []  # the last three (id, comment, text) of the page
  n_rev = 0

  def page_group() -> str:
    if page_id:
      return f"wiki-{page_id.replace(':', '_')}"
    if title:
      return f"wiki-title{zlib.crc32(title.encode('utf-8', 'surrogatepass')):08x}"
    return f"wiki-{name.replace(':', '_')}"

  def check():
    _, comment, text = revs[2]
    if not REVERT_COMMENT.search(comment):
      return
    rid = f"{page_group()}:{revs[1][0] or f'rev{n_rev - 1}'}"
    try:
      orig, vand = revs[0][2], revs[1][2]
      if text != orig:
        res.bad.append((rid, "revert comment but text differs from the revision before the edit"))
        return
      if orig is None or vand is None:
        res.bad.append((rid, "revision without text"))
        return
      if title is None:
        res.bad.append((rid, "page without title"))
        return
      before, a, b = _changed_span(orig, vand)
      if not check_comparison(rid, [a, b], res.bad):
        return
      res.add(comparison(rid, f"Wikipedia article: {title}\n\n{before}", [a, b], [1.0, 0.0]))
    except RECORD_ERRORS as e:
      res.malformed(rid, e)

  try:
    with open_any(path) as f:
      for event, el in ET.iterparse(f, events=("start", "end")):
        tag = el.tag.rsplit("}", 1)[-1]
        if event == "start":
          if tag == "page":
            title, page_id, revs, in_page, in_revision = None, None, [], True, False
          elif tag == "revision":
            in_revision = True
          continue
        if tag == "title":
          title = el.text or ""
        elif tag == "id" and in_page and not in_revision and page_id is None:
          page_id = (el.text or "").strip() or None  # the page's own <id> (a revision's and contributor's are inside)
        elif tag == "revision":
          in_revision = False
          n_rev += 1
          rid = el.findtext("{*}id") or el.findtext("id") or None
          comment = el.findtext("{*}comment") or el.findtext("comment") or ""
          text = el.find("{*}text")
          text = el.find("text") if text is None else text
          revs.append((rid, comment, None if text is None else (text.text or "")))
          del revs[:-3]
          el.clear()
          if len(revs) == 3:
            check()
        elif tag == "page":
          title, page_id, revs, in_page = None, None, [], False
          el.clear()
  except ET.ParseError as e:
    res.bad.append((f"wiki:{name}", f"{path}: malformed XML, parsing stopped: {e}"))
  except stream_errors() as e:
    res.bad.append((f"wiki:{name}", shorten(f"{path}: truncated or corrupt file, parsing stopped "
                                            f"({type(e).__name__}: {e})", 400)))
  return res
