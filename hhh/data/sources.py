"""Parsers of the paper's datasets in their ORIGINAL file formats, with canonical download locations.

Every parser returns a ParseResult: the good records (dicts with the raw task features of their kind) and the
bad ones as (record id, reason). Exclusion rule (the same everywhere): a record is excluded, counted and reported
with its id when it cannot be decoded (invalid UTF-8, malformed JSON/XML/CSV), lacks a required field, has an
empty context-free response, has identical responses, has negative/missing votes where votes are required,
or (for ranked data) leaves fewer than two responses with different scores. Nothing is dropped silently: each
task logs its exclusions and `tasks.bad_records(task, split)` / `tools/show_task.py --count` list them.

Splits: datasets without an official split are split by a stable hash (crc32) of the record's group id
(question/post/page): 95% train, 5% validation.
"""
from __future__ import annotations

import bz2
import csv
import dataclasses
import glob as glob_lib
import gzip
import html
import io
import itertools
import json
import lzma
import math
import os
import re
import urllib.request
import xml.etree.ElementTree as ET
import zlib
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from hhh.data import dialogue

# Canonical download locations (the loaders read local copies; `download` fetches them when online).
URLS = {
    "hhh_alignment": "https://raw.githubusercontent.com/google/BIG-bench/main/bigbench/benchmark_tasks/"
                     "hhh_alignment/{subset}/task.json",
    "truthful_qa_mc": "https://raw.githubusercontent.com/google/BIG-bench/main/bigbench/benchmark_tasks/"
                      "truthful_qa/task_mc.json",
    "stackexchange": "https://archive.org/download/stackexchange/{site}.7z",  # contains Posts.xml
    "reddit": "https://files.pushshift.io/reddit/comments/RC_{yyyy_mm}.zst",
    "reddit_submissions": "https://files.pushshift.io/reddit/submissions/RS_{yyyy_mm}.zst",
    "wikipedia": "https://dumps.wikimedia.org/enwiki/latest/enwiki-latest-pages-meta-history1.xml-p1p844.bz2",
    "hh_rlhf": "https://huggingface.co/datasets/Anthropic/hh-rlhf/resolve/main/{subset}/{split}.jsonl.gz",
    "summarize_from_feedback": "https://openaipublic.blob.core.windows.net/summarize-from-feedback/dataset/"
                               "comparisons/batch{n}.json",
    "eli5": "https://huggingface.co/datasets/eli5/resolve/main/data/{split}.jsonl",  # ELI5 jsonl (answers/score)
    "ethics": "https://people.eecs.berkeley.edu/~hendrycks/ethics.tar",  # commonsense/cm_{split}.csv
}
BIGBENCH_SUBSETS = ("harmless", "helpful", "honest", "other")


@dataclasses.dataclass
class ParseResult:
  records: List[dict] = dataclasses.field(default_factory=list)
  bad: List[Tuple[str, str]] = dataclasses.field(default_factory=list)

  def extend(self, other: "ParseResult"):
    self.records.extend(other.records)
    self.bad.extend(other.bad)
    return self


class MissingData(FileNotFoundError):
  pass


def download(url: str, dest: str) -> str:
  """Fetches `url` to `dest` (used by `tools` when online; this machine has no internet, so tests never call it)."""
  os.makedirs(os.path.dirname(dest) or ".", exist_ok=True)
  tmp = dest + ".part"
  with urllib.request.urlopen(url, timeout=60) as r, open(tmp, "wb") as f:
    while chunk := r.read(1 << 20):
      f.write(chunk)
  os.replace(tmp, dest)
  return dest


def expand(pattern: str, what: str, url: str) -> List[str]:
  files = sorted(glob_lib.glob(os.path.expanduser(pattern)))
  if not files:
    raise MissingData(f"{what}: no files match {pattern!r}. Download from {url} (sources.download) or point the "
                      f"config/env path at a local copy.")
  return files


def open_any(path: str) -> io.BufferedReader:
  """Opens plain, .gz, .bz2, .xz or .zst files as a binary stream."""
  if path.endswith(".gz"):
    return gzip.open(path, "rb")
  if path.endswith(".bz2"):
    return bz2.open(path, "rb")
  if path.endswith(".xz"):
    return lzma.open(path, "rb")
  if path.endswith(".zst"):
    try:
      import zstandard  # optional: pushshift dumps are zstd-compressed
    except ImportError as e:
      raise ImportError(f"{path}: reading .zst needs the `zstandard` package") from e
    return io.BufferedReader(zstandard.ZstdDecompressor(max_window_size=2**31).stream_reader(open(path, "rb")))
  return open(path, "rb")


def hash_split(group_id: str, validation_percent: int = 5) -> str:
  return "validation" if zlib.crc32(group_id.encode("utf-8")) % 100 < validation_percent else "train"


def _decode(raw: bytes, rid: str, bad: list) -> Optional[str]:
  try:
    return raw.decode("utf-8")
  except UnicodeDecodeError as e:
    bad.append((rid, f"invalid UTF-8 at byte {e.start}"))
    return None


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


# -----------------------------------------------------------------------------------------------------------------
# Ranked -> pairs, and the binary PMP transformation

def ranked_pairs(rec: dict) -> List[dict]:
  """Every pair of responses with different scores, better first (ties give no pair)."""
  out = []
  rs, ss = rec["responses"], rec["scores"]
  for i, j in itertools.combinations(range(len(rs)), 2):
    if ss[i] == ss[j]:
      continue
    a, b = (i, j) if ss[i] > ss[j] else (j, i)
    out.append(comparison(f"{rec['id']}:{a}>{b}", rec["context"], [rs[a], rs[b]], [1.0, 0.0]))
  return out


def binary_pmp(pair: dict) -> List[dict]:
  """The paper's binary PMP: a pair A > B becomes two independent comparisons
  "GOOD:" + A > "BAD:" + A  and  "BAD:" + B > "GOOD:" + B  (the label is prefixed to the response)."""
  a, b = pair["responses"][0], pair["responses"][1]
  if pair["scores"][0] <= pair["scores"][1]:
    raise ValueError(f"{pair['id']}: binary_pmp expects the better response first")
  return [comparison(pair["id"] + ":A", pair["context"], ["GOOD:" + a, "BAD:" + a], [1.0, 0.0]),
          comparison(pair["id"] + ":B", pair["context"], ["BAD:" + b, "GOOD:" + b], [1.0, 0.0])]


# -----------------------------------------------------------------------------------------------------------------
# BIG-bench: hhh_alignment and truthful_qa (task.json / task_mc.json)

def _bigbench_examples(path: str, res: ParseResult, prefix: str):
  with open(path, "rb") as f:
    text = _decode(f.read(), path, res.bad)
  if text is None:
    return []
  try:
    return json.loads(text)["examples"]
  except (json.JSONDecodeError, KeyError) as e:
    res.bad.append((path, f"malformed BIG-bench JSON: {e}"))
    return []


def parse_bigbench_choices(path: str, prefix: str, style: str = "paper") -> ParseResult:
  """BIG-bench multiple-choice JSON -> multiple_choice records (context, choices, targets = target_scores).

  style "paper": context "\\n\\nHuman: {input}\\n\\nAssistant:", choice " {text}";
  style "bigbench": BIG-bench's own "\\nHuman: {input}\\nAssistant:" (for comparison with other tools).
  """
  res = ParseResult()
  for i, ex in enumerate(_bigbench_examples(path, res, prefix)):
    rid = f"{prefix}-{i}"
    if not isinstance(ex, dict) or not isinstance(ex.get("input"), str) or not isinstance(ex.get("target_scores"), dict):
      res.bad.append((rid, "missing input or target_scores"))
      continue
    choices = list(ex["target_scores"])
    if len(choices) < 2 or not check_comparison(rid, choices, res.bad):
      if len(choices) < 2:
        res.bad.append((rid, "fewer than two choices"))
      continue
    ctx = dialogue.query(ex["input"]) if style == "paper" else dialogue.bigbench_context(ex["input"])
    res.records.append({"id": rid, "context": ctx, "choices": [dialogue.response(c) for c in choices],
                        "targets": [float(ex["target_scores"][c]) for c in choices]})
  return res


def bigbench_as_comparisons(mc: ParseResult) -> ParseResult:
  return ParseResult([comparison(r["id"], r["context"], r["choices"], r["targets"]) for r in mc.records],
                     list(mc.bad))


# -----------------------------------------------------------------------------------------------------------------
# StackExchange data dump: Posts.xml

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
  with open_any(path) as f:
    for n, raw in enumerate(f):
      line = raw.strip()
      if not line.startswith(b"<row"):
        continue
      m = re.search(rb'\bId="([^"]*)"', line)
      rid = f"{site}-{m.group(1).decode('ascii', 'replace') if m else 'line' + str(n + 1)}"
      text = _decode(line, rid, res.bad)
      if text is None:
        continue
      try:
        a = ET.fromstring(text).attrib
      except ET.ParseError as e:
        res.bad.append((rid, f"malformed XML row: {e}"))
        continue
      kind = a.get("PostTypeId")
      if kind == "1":
        questions[a.get("Id")] = a
      elif kind == "2":
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
  for qid, ans in answers.items():
    rid = f"{site}-{qid}"
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
    res.records.append(comparison(rid, ctx, [dialogue.response(b) for _, b, _ in ans], scores))
  for qid, q in questions.items():
    if qid not in answers:
      res.bad.append((f"{site}-{qid}", "question without answers"))
  return res


# -----------------------------------------------------------------------------------------------------------------
# Reddit (pushshift comment dumps, one JSON object per line; optional submission dumps for the post text)

def _jsonl(path: str, prefix: str, res: ParseResult) -> Iterator[Tuple[str, dict]]:
  with open_any(path) as f:
    for n, raw in enumerate(f):
      if not raw.strip():
        continue
      rid = f"{prefix}:{os.path.basename(path)}:{n + 1}"
      text = _decode(raw, rid, res.bad)
      if text is None:
        continue
      try:
        obj = json.loads(text)
      except json.JSONDecodeError as e:
        res.bad.append((rid, f"malformed JSON: {e.msg}"))
        continue
      if not isinstance(obj, dict):
        res.bad.append((rid, "not a JSON object"))
        continue
      yield rid, obj


def parse_reddit(comment_paths: Sequence[str], submission_paths: Sequence[str] = ()) -> ParseResult:
  """Top-level comments of the same post ranked by karma (score). Context = the post (title + selftext) when a
  submission dump is given, else the post's title is unknown and the post id is used as a minimal context."""
  res = ParseResult()
  posts: Dict[str, str] = {}
  for p in submission_paths:
    for rid, o in _jsonl(p, "reddit-post", res):
      if "id" in o and isinstance(o.get("title"), str):
        posts["t3_" + o["id"]] = (o["title"] + ("\n\n" + o["selftext"] if o.get("selftext") else "")).strip()
  groups: Dict[str, List[Tuple[str, str, int]]] = {}
  for p in comment_paths:
    for rid, o in _jsonl(p, "reddit", res):
      cid = "reddit-" + str(o.get("id", rid))
      if not isinstance(o.get("link_id"), str) or not isinstance(o.get("body"), str):
        res.bad.append((cid, "missing link_id or body"))
        continue
      if o.get("parent_id") != o["link_id"]:
        continue  # replies to comments are not answers to the post (not bad data; not a candidate)
      if not isinstance(o.get("score"), int):
        res.bad.append((cid, "missing or non-integer score"))
        continue
      body = o["body"].strip()
      if not body or body in ("[deleted]", "[removed]"):
        res.bad.append((cid, "empty or deleted body"))
        continue
      groups.setdefault(o["link_id"], []).append((cid, body, o["score"]))
  for link, cs in groups.items():
    rid = f"reddit-{link}"
    if len(cs) < 2:
      res.bad.append((rid, "fewer than two comments"))
      continue
    if len({s for _, _, s in cs}) < 2:
      res.bad.append((rid, "all comments have the same karma"))
      continue
    if not check_comparison(rid, [b for _, b, _ in cs], res.bad):
      continue
    ctx = dialogue.query(posts.get(link, f"Reddit post {link}"))
    res.records.append(comparison(rid, ctx, [dialogue.response(b) for _, b, _ in cs], [float(s) for _, _, s in cs]))
  return res


# -----------------------------------------------------------------------------------------------------------------
# Wikipedia: MediaWiki XML revision history; reverted vandalism

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
  reverts the vandal edit r_{k-1}: the original lines (from r_{k-2}) are preferred over the vandalised ones."""
  res = ParseResult()
  ns = ""
  title, revs = None, []

  def flush():
    for k in range(2, len(revs)):
      rid_k, comment, text = revs[k]
      if not REVERT_COMMENT.search(comment or ""):
        continue
      rid = f"wiki-{revs[k - 1][0]}"
      orig, vand = revs[k - 2][2], revs[k - 1][2]
      if text != orig:
        res.bad.append((rid, "revert comment but text differs from the revision before the edit"))
        continue
      if orig is None or vand is None:
        res.bad.append((rid, "revision without text"))
        continue
      before, a, b = _changed_span(orig, vand)
      if not check_comparison(rid, [a, b], res.bad):
        continue
      ctx = f"Wikipedia article: {title}\n\n{before}"
      res.records.append(comparison(rid, ctx, [a, b], [1.0, 0.0]))

  try:
    with open_any(path) as f:
      for event, el in ET.iterparse(f, events=("start", "end")):
        tag = el.tag.rsplit("}", 1)[-1]
        if event == "start":
          continue
        if tag == "title":
          title = el.text or ""
        elif tag == "revision":
          rid = el.findtext("{*}id") or el.findtext("id") or "?"
          comment = el.findtext("{*}comment") or el.findtext("comment") or ""
          text = el.find("{*}text")
          text = el.find("text") if text is None else text
          revs.append((rid, comment, None if text is None else (text.text or "")))
          el.clear()
        elif tag == "page":
          flush()
          title, revs = None, []
          el.clear()
  except ET.ParseError as e:
    res.bad.append((f"wiki:{os.path.basename(path)}", f"malformed XML, parsing stopped: {e}"))
    flush()
  return res


# -----------------------------------------------------------------------------------------------------------------
# Anthropic HH-RLHF (jsonl.gz with "chosen"/"rejected" whole dialogues)

def parse_hh_rlhf(path: str, prefix: str = "hh") -> ParseResult:
  res = ParseResult()
  for rid, o in _jsonl(path, prefix, res):
    if not isinstance(o.get("chosen"), str) or not isinstance(o.get("rejected"), str):
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
    res.records.append(comparison(rid, c_ctx, [c_resp, r_resp], [1.0, 0.0]))
  return res


# -----------------------------------------------------------------------------------------------------------------
# Learn to Summarize (summarize-from-feedback comparisons/batch*.json, JSON lines)

def summarize_context(info: dict) -> str:
  return dialogue.query(f"Summarize this post.\n\nTitle: {info.get('title') or ''}\n\n{info['post']}")


def parse_summarize(path: str) -> ParseResult:
  res = ParseResult()
  for rid, o in _jsonl(path, "tldr", res):
    info, sums, choice = o.get("info"), o.get("summaries"), o.get("choice")
    if (not isinstance(info, dict) or not isinstance(info.get("post"), str) or not isinstance(sums, list)
        or len(sums) != 2 or choice not in (0, 1)):
      res.bad.append((rid, "missing info.post, two summaries or choice"))
      continue
    texts = [s.get("text") if isinstance(s, dict) else None for s in sums]
    if not all(isinstance(t, str) for t in texts):
      res.bad.append((rid, "summary without text"))
      continue
    texts = [t.strip() for t in texts]
    if not check_comparison(rid, texts, res.bad):
      continue
    better, worse = texts[choice], texts[1 - choice]
    res.records.append(comparison(rid, summarize_context(info), [dialogue.response(better), dialogue.response(worse)],
                                  [1.0, 0.0]))
  return res


# -----------------------------------------------------------------------------------------------------------------
# ELI5 (jsonl: q_id, title, selftext, answers {a_id, text, score})

def parse_eli5(path: str) -> ParseResult:
  res = ParseResult()
  for rid, o in _jsonl(path, "eli5", res):
    rid = f"eli5-{o.get('q_id', rid)}"
    ans = o.get("answers")
    if not isinstance(o.get("title"), str) or not isinstance(ans, dict) or not isinstance(ans.get("text"), list):
      res.bad.append((rid, "missing title or answers"))
      continue
    texts, scores = ans["text"], ans.get("score")
    if not isinstance(scores, list) or len(scores) != len(texts) or not all(isinstance(s, int) for s in scores):
      res.bad.append((rid, "missing or malformed answer scores"))
      continue
    if any(s < 0 for s in scores):
      res.bad.append((rid, "negative answer score"))
      continue
    if len(texts) < 2 or len(set(scores)) < 2:
      res.bad.append((rid, "fewer than two answers with different scores"))
      continue
    if not check_comparison(rid, [str(t) for t in texts], res.bad):
      continue
    q = o["title"] + ("\n\n" + o["selftext"] if o.get("selftext") else "")
    res.records.append(comparison(rid, dialogue.query(q), [dialogue.response(t.strip()) for t in texts],
                                  [float(s) for s in scores]))
  return res


# -----------------------------------------------------------------------------------------------------------------
# ETHICS commonsense (cm_{train,test}.csv: label,input,is_short,edited; label 1 = clearly wrong)

ETHICS_QUESTION = "Is the following behaviour acceptable?\n\n{input}"


def parse_ethics(path: str) -> ParseResult:
  """Binary samples: the correct answer (" Yes, it is acceptable." / " No, it is wrong.") is labelled 1, the
  other 0 — the paper's C:A > C:B construction for binary data, usable both as binary and comparison data."""
  res = ParseResult()
  with open(path, "rb") as f:
    raw = f.read()
  text = _decode(raw, os.path.basename(path), res.bad)
  if text is None:
    return res
  reader = csv.DictReader(io.StringIO(text))
  for n, row in enumerate(reader):
    rid = f"ethics-{os.path.basename(path)}:{n + 2}"
    if row.get("label") not in ("0", "1") or not (row.get("input") or "").strip():
      res.bad.append((rid, "missing label or input"))
      continue
    ctx = dialogue.query(ETHICS_QUESTION.format(input=row["input"].strip()))
    yes, no = dialogue.response("Yes, it is acceptable."), dialogue.response("No, it is wrong.")
    wrong = row["label"] == "1"
    res.records.append({"id": rid, "context": ctx, "responses": [no, yes] if wrong else [yes, no],
                        "scores": [1.0, 0.0]})
  return res


def comparisons_to_binary(records: Iterable[dict]) -> List[dict]:
  """Pairs (better first) -> binary samples: better labelled 1, worse 0."""
  out = []
  for r in records:
    out.append({"id": r["id"] + ":good", "context": r["context"], "response": r["responses"][0], "label": 1.0})
    out.append({"id": r["id"] + ":bad", "context": r["context"], "response": r["responses"][1], "label": 0.0})
  return out
