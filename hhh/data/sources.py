"""Parsers of the paper's datasets in their ORIGINAL file formats, with canonical download locations.

Every parser returns a ParseResult: the good records (dicts with the raw task features of their kind), the bad
ones as (record id, reason), and the kept-but-shortened ones as (record id, what was cut).

Exclusion rule (the same everywhere): a record is excluded, counted and reported with its id when it cannot be
decoded (invalid UTF-8 or a lone surrogate, malformed JSON/XML/CSV, a JSON line that is not an object), lacks a
required field or has one of the wrong type (a number or list where text is expected, a string or bool where a
number is expected, ...), has an empty context-free response, has identical responses, has negative/missing votes
where votes are required, or (for ranked data) leaves fewer than two responses with different scores. A record
whose conversion raises anyway (TypeError, ValueError, KeyError, AttributeError, IndexError, RecursionError) is
excluded the same way: one bad record never stops a file. A compressed file that ends early or is corrupt keeps
the records read so far and adds one bad record naming the file and the first line not read.

Size cap (truncation, counted in `ParseResult.truncated`, not excluded): every text field is cut to
MAX_TEXT_CHARS characters (env HHH_MAX_TEXT_CHARS) before it reaches tokenisation: a context keeps its END (what
is nearest the response, as the pipeline's token truncation does), a response/choice its START; a ranked record
keeps its first MAX_RESPONSES responses (env HHH_MAX_RESPONSES; pairs grow quadratically). Nothing is dropped
silently: each task logs its exclusions and truncations, `tasks.bad_records(task, split)` /
`tasks.truncated_records(task, split)` / `tools/show_task.py --count` list them.

Splits: datasets without an official split are split by a stable hash (crc32) of the record's group id
(question/post/page; the part of the id before the first ':'): 95% train, 5% validation.
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
import sys
import urllib.request
import xml.etree.ElementTree as ET
import zlib
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from hhh.data import dialogue
from hhh.core.errors import UserError

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


def _short(reason: str, n: int = 200) -> str:
  return reason if len(reason) <= n else reason[:n] + "..."


def _encodable(s: str) -> bool:
  """False for text that cannot be written as UTF-8 (lone surrogates, e.g. from a JSON "\\ud800" escape)."""
  try:
    s.encode("utf-8")
    return True
  except UnicodeEncodeError:
    return False


def _is_text(v) -> bool:
  return isinstance(v, str)


def _is_int(v) -> bool:
  return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
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
    self.bad.append((rid, _short(f"malformed record ({type(e).__name__}: {e})")))

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
        if isinstance(t, str) and not _encodable(t):
          self.bad.append((rid, "text is not valid Unicode (lone surrogate)"))
          return False
    if cuts:
      self.truncated.append((rid, "; ".join(cuts)))
    self.records.append(rec)
    return True


class MissingData(UserError, FileNotFoundError):
  """A dataset's files are not where its glob looks; the message names the glob and the variable that sets it."""


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


def _stream_errors() -> tuple:
  """What reading a truncated or corrupt (compressed) file raises."""
  errs = [EOFError, OSError, zlib.error, lzma.LZMAError]
  if "zstandard" in sys.modules:
    errs.append(sys.modules["zstandard"].ZstdError)
  return tuple(errs)


def _lines(path: str, res: ParseResult, tail_id: Callable[[int], str]) -> Iterator[Tuple[int, bytes]]:
  """(line number from 1, raw line) of a plain or compressed file. A file that ends early or is corrupt (truncated
  .gz/.bz2/.xz/.zst) keeps the lines read so far and adds one bad record `tail_id(first line not read)` whose
  reason names the file."""
  n = 0
  with open_any(path) as f:
    it = iter(f)
    while True:
      try:
        raw = next(it)
      except StopIteration:
        return
      except _stream_errors() as e:
        res.bad.append((tail_id(n + 1), _short(f"{path}: truncated or corrupt file, lines from {n + 1} on not read "
                                               f"({type(e).__name__}: {e})", 400)))
        return
      n += 1
      yield n, raw


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

def _bigbench_examples(path: str, res: ParseResult, prefix: str) -> list:
  with open(path, "rb") as f:
    text = _decode(f.read(), path, res.bad)
  if text is None:
    return []
  try:
    examples = json.loads(text)["examples"]
  except (json.JSONDecodeError, KeyError, TypeError, RecursionError) as e:
    res.bad.append((path, _short(f"malformed BIG-bench JSON: {type(e).__name__}: {e}")))
    return []
  if not isinstance(examples, list):
    res.bad.append((path, f"malformed BIG-bench JSON: examples is a {type(examples).__name__}, not a list"))
    return []
  return examples


def parse_bigbench_choices(path: str, prefix: str, style: str = "paper") -> ParseResult:
  """BIG-bench multiple-choice JSON -> multiple_choice records (context, choices, targets = target_scores).

  style "paper": context "\\n\\nHuman: {input}\\n\\nAssistant:", choice " {text}";
  style "bigbench": BIG-bench's own "\\nHuman: {input}\\nAssistant:" (for comparison with other tools).
  """
  res = ParseResult()
  for i, ex in enumerate(_bigbench_examples(path, res, prefix)):
    rid = f"{prefix}-{i}"
    try:
      if not isinstance(ex, dict) or not _is_text(ex.get("input")) or not isinstance(ex.get("target_scores"), dict):
        res.bad.append((rid, "missing input or target_scores"))
        continue
      choices = list(ex["target_scores"])
      if not all(_is_number(v) for v in ex["target_scores"].values()):
        res.bad.append((rid, "target_scores value that is not a finite number"))
        continue
      if len(choices) < 2:
        res.bad.append((rid, "fewer than two choices"))
        continue
      if not check_comparison(rid, choices, res.bad):
        continue
      ctx = dialogue.query(ex["input"]) if style == "paper" else dialogue.bigbench_context(ex["input"])
      res.add({"id": rid, "context": ctx, "choices": [dialogue.response(c) for c in choices],
               "targets": [float(ex["target_scores"][c]) for c in choices]})
    except RECORD_ERRORS as e:
      res.malformed(rid, e)
  return res


def bigbench_as_comparisons(mc: ParseResult) -> ParseResult:
  return mc.derive(comparison(r["id"], r["context"], r["choices"], r["targets"]) for r in mc.records)


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
  for n, raw in _lines(path, res, lambda k: f"{site}-line{k}"):
    line = raw.strip()
    if not line.startswith(b"<row"):
      continue
    m = re.search(rb'\bId="([^"]*)"', line)
    rid = f"{site}-{m.group(1).decode('ascii', 'replace') if m else 'line' + str(n)}"
    try:
      text = _decode(line, rid, res.bad)
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


# -----------------------------------------------------------------------------------------------------------------
# Reddit (pushshift comment dumps, one JSON object per line; optional submission dumps for the post text)

def _jsonl(path: str, prefix: str, res: ParseResult) -> Iterator[Tuple[str, dict]]:
  name = os.path.basename(path)
  for n, raw in _lines(path, res, lambda k: f"{prefix}:{name}:{k}"):
    if not raw.strip():
      continue
    rid = f"{prefix}:{name}:{n}"
    text = _decode(raw, rid, res.bad)
    if text is None:
      continue
    try:
      obj = json.loads(text)
    except json.JSONDecodeError as e:
      res.bad.append((rid, f"malformed JSON: {e.msg}"))
      continue
    except RecursionError:
      res.bad.append((rid, "malformed JSON: nested too deeply"))
      continue
    if not isinstance(obj, dict):
      res.bad.append((rid, f"not a JSON object (a {type(obj).__name__})"))
      continue
    yield rid, obj


_DELETED = ("[deleted]", "[removed]")


def parse_reddit(comment_paths: Sequence[str], submission_paths: Sequence[str] = ()) -> ParseResult:
  """Top-level comments of the same post ranked by karma (score). Context = the post (title + selftext) when a
  submission dump is given, else the post's title is unknown and the post id is used as a minimal context."""
  res = ParseResult()
  posts: Dict[str, str] = {}
  for p in submission_paths:
    for rid, o in _jsonl(p, "reddit-post", res):
      try:
        pid = o.get("id")
        if not _is_text(pid) or not pid:
          res.bad.append((rid, _short(f"submission id missing or not a string: {pid!r}")))
          continue
        rid = f"reddit-post-t3_{pid}"
        title, selftext = o.get("title"), o.get("selftext")
        if not _is_text(title) or not title.strip():
          res.bad.append((rid, "submission title missing, empty or not a string"))
          continue
        if selftext is not None and not _is_text(selftext):
          res.bad.append((rid, "submission selftext is not a string"))
          continue
        selftext = "" if selftext is None or selftext.strip() in _DELETED else selftext
        post = (title + ("\n\n" + selftext if selftext else "")).strip()
        if not _encodable(post):
          res.bad.append((rid, "text is not valid Unicode (lone surrogate)"))
          continue
        posts["t3_" + pid] = post
      except RECORD_ERRORS as e:
        res.malformed(rid, e)
  groups: Dict[str, List[Tuple[str, str, int]]] = {}
  for p in comment_paths:
    for rid, o in _jsonl(p, "reddit", res):
      oid = o.get("id")
      cid = f"reddit-{oid}" if (_is_text(oid) and oid) or _is_int(oid) else rid
      try:
        if not _is_text(o.get("link_id")) or not _is_text(o.get("body")):
          res.bad.append((cid, "missing link_id or body"))
          continue
        if not _is_text(o.get("parent_id")):
          res.bad.append((cid, "missing parent_id"))
          continue
        if o["parent_id"] != o["link_id"]:
          continue  # replies to comments are not answers to the post (not bad data; not a candidate)
        if not _is_int(o.get("score")):
          res.bad.append((cid, "missing or non-integer score"))
          continue
        body = o["body"].strip()
        if not body or body in _DELETED:
          res.bad.append((cid, "empty or deleted body"))
          continue
        if not _encodable(body):
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
  except _stream_errors() as e:
    res.bad.append((f"wiki:{name}", _short(f"{path}: truncated or corrupt file, parsing stopped "
                                           f"({type(e).__name__}: {e})", 400)))
  return res


# -----------------------------------------------------------------------------------------------------------------
# Anthropic HH-RLHF (jsonl.gz with "chosen"/"rejected" whole dialogues)

def parse_hh_rlhf(path: str, prefix: str = "hh") -> ParseResult:
  res = ParseResult()
  for rid, o in _jsonl(path, prefix, res):
    try:
      if not _is_text(o.get("chosen")) or not _is_text(o.get("rejected")):
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


# -----------------------------------------------------------------------------------------------------------------
# Learn to Summarize (summarize-from-feedback comparisons/*.json, JSON lines)
#
# comparisons/ holds the TL;DR batches (info: id, post, title, subreddit) and the CNN/DM ones (info: id = the sha1
# of the article's URL, article, title, site = "cnn" / "dailymail"; no post), each line
# {"info", "summaries": [{"text", "policy", "note"}, x2], "choice", "worker", "batch", "split", "extra"}
# (github.com/openai/summarize-from-feedback README and summarize_from_feedback/datasets/cnndm.py).

def summarize_context(info: dict) -> str:
  if _is_text(info.get("post")):
    return dialogue.query(f"Summarize this post.\n\nTitle: {info.get('title') or ''}\n\n{info['post']}")
  return dialogue.query(f"Summarize this news article.\n\nTitle: {info.get('title') or ''}\n\n{info['article']}")


def parse_summarize(path: str) -> ParseResult:
  """Record ids are "tldr-{info.id}:{file}:{line}" (a Reddit post) or "cnndm-{info.id}:{file}:{line}" (a CNN/DM
  article): the hash split groups every comparison of one post / article (its id, or a hash of its text when the id
  is missing), so a post or an article is never in both splits. The context is the post, or for CNN/DM the article
  (with its title; `site` is not used)."""
  res = ParseResult()
  for rid, o in _jsonl(path, "tldr", res):
    try:
      info, sums, choice = o.get("info"), o.get("summaries"), o.get("choice")
      if (not isinstance(info, dict) or not (_is_text(info.get("post")) or _is_text(info.get("article")))
          or not isinstance(sums, list) or len(sums) != 2 or not _is_int(choice) or choice not in (0, 1)):
        res.bad.append((rid, "missing info.post (or info.article), two summaries or choice"))
        continue
      if info.get("title") is not None and not _is_text(info["title"]):
        res.bad.append((rid, "info.title is not a string"))
        continue
      kind, text = ("tldr", info["post"]) if _is_text(info.get("post")) else ("cnndm", info["article"])
      post_id = info.get("id")
      if _is_text(post_id) and post_id:
        group = f"{kind}-" + post_id.replace(":", "_")
      else:
        group = f"{kind}-{'post' if kind == 'tldr' else 'article'}"
        group += f"{zlib.crc32(text.encode('utf-8', 'surrogatepass')):08x}"
      rid = group + rid[len("tldr"):]
      texts = [s.get("text") if isinstance(s, dict) else None for s in sums]
      if not all(_is_text(t) for t in texts):
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


# -----------------------------------------------------------------------------------------------------------------
# ELI5 (jsonl: q_id, title, selftext, answers {a_id, text, score})

def parse_eli5(path: str) -> ParseResult:
  res = ParseResult()
  for rid, o in _jsonl(path, "eli5", res):
    qid = o.get("q_id")
    rid = f"eli5-{qid}" if (_is_text(qid) and qid) or _is_int(qid) else rid
    try:
      ans = o.get("answers")
      if not _is_text(o.get("title")) or not isinstance(ans, dict) or not isinstance(ans.get("text"), list):
        res.bad.append((rid, "missing title or answers"))
        continue
      if o.get("selftext") is not None and not _is_text(o["selftext"]):
        res.bad.append((rid, "selftext is not a string"))
        continue
      texts, scores = ans["text"], ans.get("score")
      if not all(_is_text(t) for t in texts):
        res.bad.append((rid, "answer text that is not a string"))
        continue
      if not isinstance(scores, list) or len(scores) != len(texts) or not all(_is_int(s) for s in scores):
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


# -----------------------------------------------------------------------------------------------------------------
# ETHICS commonsense (cm_{train,test}.csv: label,input,is_short,edited; label 1 = clearly wrong)

ETHICS_QUESTION = "Is the following behaviour acceptable?\n\n{input}"
# csv's default limit (131,072 characters per field) raises _csv.Error and stops the file; fields are read whole
# and capped by ParseResult.add (MAX_TEXT_CHARS) instead.
_CSV_FIELD_LIMIT = 2**31 - 1


def parse_ethics(path: str) -> ParseResult:
  """Binary samples: the correct answer (" Yes, it is acceptable." / " No, it is wrong.") is labelled 1, the
  other 0 — the paper's C:A > C:B construction for binary data, usable both as binary and comparison data.

  Rows are decoded one by one (a row with invalid UTF-8 is one bad record, not the whole file); a row with another
  number of fields than the header (an unquoted comma, or a stray quote that swallowed the lines after it: the
  reason names the lines) is bad. Ids are "ethics-{file}:{n + 1}" for the n-th data row."""
  res = ParseResult()
  name = os.path.basename(path)
  with open(path, "rb") as f:
    text = f.read().decode("utf-8", "surrogateescape")  # invalid bytes -> lone surrogates, found per row
  old_limit = csv.field_size_limit()
  csv.field_size_limit(max(old_limit, _CSV_FIELD_LIMIT))
  try:
    reader = csv.reader(io.StringIO(text))
    try:
      header = next(reader, None)
    except csv.Error:
      header = None
    if header is None or not _encodable("".join(header)):
      res.bad.append((f"ethics-{name}", "missing or malformed header row"))
      return res
    n, last_line = 0, reader.line_num
    while True:
      try:
        row = next(reader)
      except StopIteration:
        break
      except csv.Error as e:  # the reader resets and goes on with the next line
        row = e
      first_line, last_line = last_line + 1, reader.line_num
      if not row:
        continue  # blank line
      n += 1
      rid = f"ethics-{name}:{n + 1}"
      lines = f"line {first_line}" if first_line == last_line else f"lines {first_line}-{last_line}"
      try:
        if isinstance(row, csv.Error):
          res.bad.append((rid, _short(f"malformed CSV row ({row}; {lines})")))
          continue
        if not _encodable("".join(row)):
          res.bad.append((rid, "invalid UTF-8"))
          continue
        if len(row) != len(header):
          res.bad.append((rid, f"malformed CSV row ({len(row)} fields, expected {len(header)}; {lines})"))
          continue
        d = dict(zip(header, row))
        if d.get("label") not in ("0", "1") or not (d.get("input") or "").strip():
          res.bad.append((rid, "missing label or input"))
          continue
        ctx = dialogue.query(ETHICS_QUESTION.format(input=d["input"].strip()))
        yes, no = dialogue.response("Yes, it is acceptable."), dialogue.response("No, it is wrong.")
        wrong = d["label"] == "1"
        res.add({"id": rid, "context": ctx, "responses": [no, yes] if wrong else [yes, no], "scores": [1.0, 0.0]})
      except RECORD_ERRORS as e:
        res.malformed(rid, e)
  finally:
    csv.field_size_limit(old_limit)
  return res


def comparisons_to_binary(records: Iterable[dict]) -> List[dict]:
  """Pairs (better first) -> binary samples: better labelled 1, worse 0."""
  out = []
  for r in records:
    out.append({"id": r["id"] + ":good", "context": r["context"], "response": r["responses"][0], "label": 1.0})
    out.append({"id": r["id"] + ":bad", "context": r["context"], "response": r["responses"][1], "label": 0.0})
  return out
