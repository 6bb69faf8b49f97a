"""Reading the datasets' files: canonical download locations (URLS, `download`), the globs that find local copies
(`expand`, MissingData when none match), plain and compressed streams (`open_any`), numbered lines and JSON-lines
objects that survive a truncated or corrupt file, UTF-8 decoding with the bad record counted, and the stable hash
split (95% train, 5% validation) of datasets without an official one.
"""
from __future__ import annotations

import bz2
import glob as glob_lib
import gzip
import io
import json
import lzma
import os
import sys
import urllib.request
import zlib
from typing import Callable, Iterator, List, Optional, Tuple

from hhh.core.errors import UserError
from hhh.data.sources.records import ParseResult, shorten

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


def decode(raw: bytes, rid: str, bad: list) -> Optional[str]:
  try:
    return raw.decode("utf-8")
  except UnicodeDecodeError as e:
    bad.append((rid, f"invalid UTF-8 at byte {e.start}"))
    return None


def stream_errors() -> tuple:
  """What reading a truncated or corrupt (compressed) file raises."""
  errs = [EOFError, OSError, zlib.error, lzma.LZMAError]
  if "zstandard" in sys.modules:
    errs.append(sys.modules["zstandard"].ZstdError)
  return tuple(errs)


def numbered_lines(path: str, res: ParseResult, tail_id: Callable[[int], str]) -> Iterator[Tuple[int, bytes]]:
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
      except stream_errors() as e:
        res.bad.append((tail_id(n + 1), shorten(f"{path}: truncated or corrupt file, lines from {n + 1} on not read "
                                                f"({type(e).__name__}: {e})", 400)))
        return
      n += 1
      yield n, raw


def jsonl_objects(path: str, prefix: str, res: ParseResult) -> Iterator[Tuple[str, dict]]:
  name = os.path.basename(path)
  for n, raw in numbered_lines(path, res, lambda k: f"{prefix}:{name}:{k}"):
    if not raw.strip():
      continue
    rid = f"{prefix}:{name}:{n}"
    text = decode(raw, rid, res.bad)
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
