"""Bad and oversized records in the original file formats: every parser turns one bad record into ONE counted,
reported exclusion with its id (the rest of the file is parsed), caps huge texts (counted as truncated), and names
the file when a compressed file ends early."""
import bz2
import gzip
import json
import os
import subprocess
import sys
import textwrap
import zlib

import pytest

from hhh.data import dialogue, sources, tasks

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _jsonl(path, objs, raw_lines=()):
  data = b"".join((o if isinstance(o, bytes) else json.dumps(o).encode()) + b"\n" for o in objs)
  data += b"".join(raw_lines)
  if str(path).endswith(".gz"):
    data = gzip.compress(data)
  elif str(path).endswith(".bz2"):
    data = bz2.compress(data)
  path.write_bytes(data)
  return str(path)


def _bad_ids(res):
  return [i for i, _ in res.bad]


# -----------------------------------------------------------------------------------------------------------------
# ELI5

ELI5_GOOD = {"q_id": "good", "title": "Why?", "selftext": "",
             "answers": {"a_id": ["a", "b"], "text": ["Because.", "No idea"], "score": [4, 1]}}


def test_eli5_answer_text_not_a_string(tmp_path):
  rows = [{"q_id": "x", "title": "t", "answers": {"text": [123, "b"], "score": [1, 3]}}, ELI5_GOOD]
  res = sources.parse_eli5(_jsonl(tmp_path / "train.jsonl", rows))
  assert res.bad == [("eli5-x", "answer text that is not a string")]
  assert [r["id"] for r in res.records] == ["eli5-good"]


def test_eli5_selftext_not_a_string(tmp_path):
  rows = [ELI5_GOOD, {"q_id": "x", "title": "t", "selftext": 7,
                      "answers": {"text": ["a", "b"], "score": [1, 3]}}]
  res = sources.parse_eli5(_jsonl(tmp_path / "train.jsonl", rows))
  assert res.bad == [("eli5-x", "selftext is not a string")]
  assert [r["id"] for r in res.records] == ["eli5-good"]


def test_eli5_audit_bool_scores_padded_duplicates_and_odd_ids(tmp_path):
  rows = [{"q_id": "b", "title": "t", "answers": {"text": ["a", "b"], "score": [True, 0]}},    # bool is not a vote
          {"q_id": "d", "title": "t", "answers": {"text": ["same", "same  "], "score": [3, 1]}},  # same after strip
          {"q_id": {"x": 1}, "title": "t", "answers": ["not", "a dict"]},                       # id not a string
          [1, 2], ELI5_GOOD]
  res = sources.parse_eli5(_jsonl(tmp_path / "train.jsonl", rows))
  assert res.bad == [("eli5-b", "missing or malformed answer scores"), ("eli5-d", "identical responses"),
                     ("eli5:train.jsonl:3", "missing title or answers"),
                     ("eli5:train.jsonl:4", "not a JSON object (a list)")]
  assert [r["id"] for r in res.records] == ["eli5-good"]


# -----------------------------------------------------------------------------------------------------------------
# Reddit

COMMENTS = [{"id": "c1", "link_id": "t3_p1", "parent_id": "t3_p1", "body": "Great answer", "score": 50},
            {"id": "c2", "link_id": "t3_p1", "parent_id": "t3_p1", "body": "meh", "score": 2}]


def test_reddit_submission_id_not_a_string(tmp_path):
  cp = _jsonl(tmp_path / "RC_2015-01", COMMENTS)
  sp = _jsonl(tmp_path / "RS_2015-01", [{"id": 12345, "title": "x"}, {"id": "p1", "title": "Why is the sky blue?"}])
  res = sources.parse_reddit([cp], [sp])
  assert res.bad == [("reddit-post:RS_2015-01:1", "submission id missing or not a string: 12345")]
  assert res.records == [sources.comparison("reddit-t3_p1", dialogue.query("Why is the sky blue?"),
                                            [" Great answer", " meh"], [50, 2])]


def test_reddit_audit_submission_and_comment_types(tmp_path):
  subs = [{"id": "p1", "title": "Sky", "selftext": "[removed]"},      # removed text: the title alone, not bad
          {"id": "p2", "title": "Grass", "selftext": 7},              # number as text: bad
          {"id": "p3"},                                               # no title: bad (was skipped silently)
          {"id": "p4", "title": ["a list"]}]                          # title not a string: bad
  comments = COMMENTS + [
      {"id": "c3", "link_id": "t3_p1", "parent_id": "t3_p1", "body": "yes", "score": True},   # bool karma
      {"id": "c4", "link_id": "t3_p1", "body": "no parent", "score": 3},                      # no parent_id
      {"id": 77, "link_id": "t3_p1", "parent_id": "t3_p1", "body": {"t": "x"}, "score": 3},   # body a dict
      {"id": "c5", "link_id": "t3_p1", "parent_id": "t3_p1", "body": "bad \ud800 text", "score": 9}]
  res = sources.parse_reddit([_jsonl(tmp_path / "RC_1", comments)], [_jsonl(tmp_path / "RS_1", subs)])
  assert res.bad == [("reddit-post-t3_p2", "submission selftext is not a string"),
                     ("reddit-post-t3_p3", "submission title missing, empty or not a string"),
                     ("reddit-post-t3_p4", "submission title missing, empty or not a string"),
                     ("reddit-c3", "missing or non-integer score"), ("reddit-c4", "missing parent_id"),
                     ("reddit-77", "missing link_id or body"),
                     ("reddit-c5", "text is not valid Unicode (lone surrogate)")]
  assert [(r["id"], r["context"]) for r in res.records] == [("reddit-t3_p1", dialogue.query("Sky"))]


def test_reddit_post_with_too_many_comments_keeps_the_first_max_responses(tmp_path):
  n = sources.MAX_RESPONSES + 50
  comments = [{"id": f"c{i}", "link_id": "t3_p", "parent_id": "t3_p", "body": f"comment {i}", "score": i}
              for i in range(n)]
  res = sources.parse_reddit([_jsonl(tmp_path / "RC_1", comments)])
  assert not res.bad
  (rec,) = res.records
  assert rec["responses"] == [f" comment {i}" for i in range(sources.MAX_RESPONSES)]
  assert rec["scores"] == [float(i) for i in range(sources.MAX_RESPONSES)]
  assert res.truncated == [("reddit-t3_p", f"responses: kept the first {sources.MAX_RESPONSES} of {n}")]


# -----------------------------------------------------------------------------------------------------------------
# ETHICS

CSV_HEAD = b"label,input,is_short,edited\n"


def test_ethics_field_over_csv_limit_is_truncated_not_fatal(tmp_path):
  p = tmp_path / "cm_train.csv"
  huge = "I " + "x" * 200_000 + " did it."
  p.write_bytes(CSV_HEAD + b'1,I kicked my dog.,True,False\n0,"' + huge.encode() + b'",False,False\n'
                b"0,I fed my dog.,True,False\n")
  res = sources.parse_ethics(str(p))
  assert not res.bad
  assert [r["id"] for r in res.records] == ["ethics-cm_train.csv:2", "ethics-cm_train.csv:3",
                                            "ethics-cm_train.csv:4"]
  ctx = res.records[1]["context"]
  assert len(ctx) == sources.MAX_TEXT_CHARS and ctx.endswith("x did it.\n\nAssistant:")  # the end is kept
  full = len(dialogue.query(sources.ETHICS_QUESTION.format(input=huge)))
  assert res.truncated == [("ethics-cm_train.csv:3",
                            f"context {full} -> {sources.MAX_TEXT_CHARS} chars (kept its end)")]
  import csv
  assert csv.field_size_limit() == 131072  # the process-wide csv limit is restored


def test_ethics_invalid_utf8_is_one_bad_row(tmp_path):
  p = tmp_path / "cm_train.csv"
  p.write_bytes(CSV_HEAD + b"1,I kicked my dog.,True,False\n0,caf\xe9 au lait,True,False\n"
                b"0,I fed my dog.,True,False\n")
  res = sources.parse_ethics(str(p))
  assert res.bad == [("ethics-cm_train.csv:3", "invalid UTF-8")]
  assert [r["id"] for r in res.records] == ["ethics-cm_train.csv:2", "ethics-cm_train.csv:4"]


def test_ethics_audit_wrong_field_counts(tmp_path):
  p = tmp_path / "cm_train.csv"
  p.write_bytes(CSV_HEAD + b"1,I kicked my dog.,True,False\n"
                b"1,I lied, then I cried,True,False\n"            # unquoted comma: 5 fields
                b"0,I fed my dog.,True,False\n"
                b'0,"unclosed quote,True,False\n1,swallowed,True,False\n')  # stray quote swallows the rest
  res = sources.parse_ethics(str(p))
  assert res.bad == [("ethics-cm_train.csv:3", "malformed CSV row (5 fields, expected 4; line 3)"),
                     ("ethics-cm_train.csv:5", "malformed CSV row (2 fields, expected 4; lines 5-6)")]
  assert [r["id"] for r in res.records] == ["ethics-cm_train.csv:2", "ethics-cm_train.csv:4"]


# -----------------------------------------------------------------------------------------------------------------
# BIG-bench

def test_bigbench_target_score_not_a_number(tmp_path):
  p = tmp_path / "task.json"
  p.write_text(json.dumps({"examples": [
      {"input": "q0", "target_scores": {"a": "high", "b": 0}},
      {"input": "q1", "target_scores": {"right": 1, "wrong": 0}},
      {"input": "q2", "target_scores": {"a": True, "b": 0}},
      {"input": 5, "target_scores": {"a": 1, "b": 0}}]}))
  res = sources.parse_bigbench_choices(str(p), "bb")
  assert res.bad == [("bb-0", "target_scores value that is not a finite number"),
                     ("bb-2", "target_scores value that is not a finite number"),
                     ("bb-3", "missing input or target_scores")]
  assert [(r["id"], r["targets"]) for r in res.records] == [("bb-1", [1.0, 0.0])]


@pytest.mark.parametrize("doc", [[{"input": "q", "target_scores": {"a": 1, "b": 0}}], {"examples": 3}])
def test_bigbench_audit_wrong_top_level_types(tmp_path, doc):
  p = tmp_path / "task.json"
  p.write_text(json.dumps(doc))
  res = sources.parse_bigbench_choices(str(p), "bb")
  assert not res.records and _bad_ids(res) == [str(p)] and "malformed BIG-bench JSON" in res.bad[0][1]


# -----------------------------------------------------------------------------------------------------------------
# StackExchange, Wikipedia, summarize, hh_rlhf: audit

def test_stackexchange_audit_row_without_id(tmp_path):
  p = tmp_path / "Posts.xml"
  p.write_bytes(b'<posts>\n'
                b'  <row Id="1" PostTypeId="1" Title="Q" Body="body" />\n'
                b'  <row Id="2" PostTypeId="2" ParentId="1" Score="5" Body="A" />\n'
                b'  <row PostTypeId="2" ParentId="1" Score="9" Body="no id" />\n'
                b'  <row Id="3" PostTypeId="2" ParentId="1" Score="0" Body="B" />\n</posts>\n')
  res = sources.parse_stackexchange(str(p), site="se-t")
  assert res.bad == [("se-t-line4", "row without Id")]
  assert [(r["id"], r["responses"]) for r in res.records] == [("se-t-1", [" A", " B"])]


WIKI_NO_TITLE = """<mediawiki>
  <page><ns>0</ns><id>1</id>
    <revision><id>100</id><comment>start</comment><text>a
b</text></revision>
    <revision><id>101</id><comment></comment><text>a
VANDAL</text></revision>
    <revision><id>102</id><comment>rvv</comment><text>a
b</text></revision>
  </page>
  <page><title>Dogs</title><ns>0</ns><id>2</id>
    <revision><id>200</id><comment>start</comment><text>Dogs bark.</text></revision>
    <revision><id>201</id><comment></comment><text>Dogs meow.</text></revision>
    <revision><id>202</id><comment>Reverted edits by X</comment><text>Dogs bark.</text></revision>
  </page>
</mediawiki>"""


def test_wikipedia_audit_page_without_title(tmp_path):
  p = tmp_path / "enwiki-history.xml"
  p.write_text(WIKI_NO_TITLE)
  res = sources.parse_wikipedia(str(p))
  assert res.bad == [("wiki-1:101", "page without title")]
  assert res.records == [sources.comparison("wiki-2:201", "Wikipedia article: Dogs\n\n", ["Dogs bark.", "Dogs meow."],
                                            [1.0, 0.0])]


def test_summarize_audit_choice_and_title_types(tmp_path):
  info = {"id": "t3_x", "post": "My cat ran away.", "title": "Lost cat"}
  sums = [{"text": "Cat lost."}, {"text": "Dog."}]
  rows = [{"info": info, "summaries": sums, "choice": 1.0},                 # float index
          {"info": info, "summaries": sums, "choice": True},                # bool index
          {"info": {**info, "title": 42}, "summaries": sums, "choice": 0},  # number as the title
          {"info": info, "summaries": sums, "choice": 0}]
  res = sources.parse_summarize(_jsonl(tmp_path / "batch1.json", rows))
  assert res.bad == [("tldr:batch1.json:1", "missing info.post (or info.article), two summaries or choice"),
                     ("tldr:batch1.json:2", "missing info.post (or info.article), two summaries or choice"),
                     ("tldr:batch1.json:3", "info.title is not a string")]
  assert [r["id"] for r in res.records] == ["tldr-t3_x:batch1.json:4"]


def test_hh_rlhf_audit_unicode_nesting_and_non_objects(tmp_path):
  ctx = "\n\nHuman: Hi"
  good = {"chosen": ctx + "\n\nAssistant: Hello", "rejected": ctx + "\n\nAssistant: Go away"}
  rows = [good,
          {"chosen": ctx + "\n\nAssistant: bad \ud800", "rejected": ctx + "\n\nAssistant: ok"},  # lone surrogate
          b"[" * 100_000 + b"]" * 100_000,                                                     # nested too deep
          b'"just a string"',
          {"chosen": 5, "rejected": ctx + "\n\nAssistant: ok"}]
  res = sources.parse_hh_rlhf(_jsonl(tmp_path / "train.jsonl.gz", rows), prefix="hh")
  assert res.bad == [("hh:train.jsonl.gz:2", "text is not valid Unicode (lone surrogate)"),
                     ("hh:train.jsonl.gz:3", "malformed JSON: nested too deeply"),
                     ("hh:train.jsonl.gz:4", "not a JSON object (a str)"),
                     ("hh:train.jsonl.gz:5", "missing chosen or rejected")]
  assert [r["id"] for r in res.records] == ["hh:train.jsonl.gz:1"]
  tasks.records_to_dataset("comparison", res.records)  # what reaches tf.data encodes (a surrogate would not)


# -----------------------------------------------------------------------------------------------------------------
# Splits: summarize_from_feedback by post

def test_summarize_split_by_post(tmp_path, monkeypatch):
  posts = {"train": [], "validation": []}
  i = 0
  while len(posts["validation"]) < 2 or len(posts["train"]) < 2:
    pid = f"t3_{i}"
    posts[sources.hash_split("tldr-" + pid)].append(pid)
    i += 1
  chosen = posts["train"][:2] + posts["validation"][:2]
  rows = [{"info": {"id": pid, "post": f"Post {pid}.", "title": pid},
           "summaries": [{"text": f"Summary {j} of {pid}."}, {"text": f"Other {j}."}], "choice": 0}
          for pid in chosen for j in range(2)]
  d = tmp_path / "summarize_from_feedback" / "comparisons"
  d.mkdir(parents=True)
  _jsonl(d / "batch1.json", rows)
  monkeypatch.setenv("HHH_DATA_DIR", str(tmp_path))
  tasks.clear_parse_cache()
  try:
    got = {s: [r["id"].split(":")[0] for r in tasks.parsed("summarize_from_feedback", s).records]
           for s in ("train", "validation")}
  finally:
    tasks.clear_parse_cache()
  assert got == {s: [f"tldr-{pid}" for pid in posts[s][:2] for _ in range(2)] for s in got}


def _wiki_page(pid, title, rev_ids, with_page_id=True):
  """A page whose history is: original, then for each vandal revision id r: r (vandalised), then an rvv revert."""
  revs = [f"<revision><id>{pid}000</id><comment>start</comment><text>{title} is a page.\nIt is fine.</text>"
          "</revision>"]
  for k, r in enumerate(rev_ids):
    revs.append(f"<revision><id>{r}</id><contributor><id>9{k}</id></contributor><comment></comment>"
                f"<text>{title} is a page.\nVANDAL {r}</text></revision>")
    revs.append(f"<revision><id>{r}9</id><comment>rvv</comment><text>{title} is a page.\nIt is fine.</text>"
                "</revision>")
  page_id = f"<id>{pid}</id>" if with_page_id else ""
  return f"<page><title>{title}</title><ns>0</ns>{page_id}" + "".join(revs) + "</page>"


def test_wikipedia_split_by_page_not_by_revision(tmp_path, monkeypatch):
  # Pages whose two reverts would have been split apart by the vandal revision id (the old group).
  pages, rev = {"train": [], "validation": []}, 1000
  pid = 0
  while len(pages["validation"]) < 2 or len(pages["train"]) < 2:
    pid += 1
    ids = []
    while len({sources.hash_split(f"wiki-{r}") for r in ids}) < 2:
      rev += 1
      ids = [ids[0], rev] if ids else [rev]
    pages[sources.hash_split(f"wiki-{pid}")].append((pid, ids))
  chosen = pages["train"][:2] + pages["validation"][:2]
  xml = ('<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/"><siteinfo><sitename>W</sitename></siteinfo>'
         + "".join(_wiki_page(p, f"Page {p}", ids) for p, ids in chosen)
         + _wiki_page(0, "No:Id", [7001, 7002], with_page_id=False) + "</mediawiki>")
  d = tmp_path / "wikipedia"
  d.mkdir()
  (d / "enwiki-history1.xml").write_text(xml)
  res = sources.parse_wikipedia(str(d / "enwiki-history1.xml"))
  assert res.bad == []
  untitled = f"wiki-title{zlib.crc32(b'No:Id'):08x}"
  assert [r["id"] for r in res.records] == [f"wiki-{p}:{r}" for p, ids in chosen for r in ids] + [
      f"{untitled}:7001", f"{untitled}:7002"]
  monkeypatch.setenv("HHH_DATA_DIR", str(tmp_path))
  tasks.clear_parse_cache()
  try:
    got = {s: sorted({r["id"].split(":")[0] for r in tasks.parsed("wikipedia_ranked", s).records})
           for s in ("train", "validation")}
  finally:
    tasks.clear_parse_cache()
  want = {s: sorted(f"wiki-{p}" for p, _ in chosen if sources.hash_split(f"wiki-{p}") == s) for s in got}
  want[sources.hash_split(untitled)] = sorted(want[sources.hash_split(untitled)] + [untitled])
  assert got == want and want["train"] and want["validation"]


# -----------------------------------------------------------------------------------------------------------------
# Truncated compressed files name the file; what was read before stays

def _truncate(path, keep=0.6):
  data = open(path, "rb").read()
  open(path, "wb").write(data[:int(len(data) * keep)])


def test_truncated_jsonl_gz_names_the_file(tmp_path):
  import random
  rng = random.Random(0)
  ctx = "\n\nHuman: Hi"
  rows = [{"chosen": ctx + "\n\nAssistant: " + " ".join(str(rng.random()) for _ in range(200)),
           "rejected": ctx + f"\n\nAssistant: no {i}"} for i in range(40)]
  p = _jsonl(tmp_path / "train.jsonl.gz", rows)
  _truncate(p)
  res = sources.parse_hh_rlhf(p, prefix="hh")
  n = len(res.records)
  assert 0 < n < 40 and [r["id"] for r in res.records] == [f"hh:train.jsonl.gz:{i + 1}" for i in range(n)]
  assert len(res.bad) == 1
  rid, why = res.bad[0]
  assert rid == f"hh:train.jsonl.gz:{n + 1}" and why.startswith(f"{p}: truncated or corrupt file")
  assert "EOFError" in why


def test_truncated_bz2_wikipedia_and_gz_posts_name_the_file(tmp_path):
  w = tmp_path / "enwiki-history.xml.bz2"
  w.write_bytes(bz2.compress(WIKI_NO_TITLE.encode()))
  _truncate(str(w))
  res = sources.parse_wikipedia(str(w))  # bz2 blocks decompress whole: nothing of this one is read
  assert [i for i, _ in res.bad] == ["wiki:enwiki-history.xml.bz2"]
  assert res.bad[0][1].startswith(f"{w}: truncated or corrupt file, parsing stopped (EOFError")
  import random
  rng = random.Random(0)
  rows = b"".join(b'<row Id="%d" PostTypeId="1" Title="Q%d" Body="%s" />\n' % (i, i, str(rng.random()).encode())
                  for i in range(300))
  s = tmp_path / "Posts.xml.gz"
  s.write_bytes(gzip.compress(b"<posts>\n" + rows + b"</posts>\n"))
  _truncate(str(s))
  res = sources.parse_stackexchange(str(s), site="se-t")
  tail = [(i, r) for i, r in res.bad if "truncated" in r]
  assert len(tail) == 1 and tail[0][1].startswith(f"{s}: truncated or corrupt file")
  assert 0 < len(res.bad) - 1 < 300  # the questions read before (no answers) are still reported


# -----------------------------------------------------------------------------------------------------------------
# One huge record: capped at parse time, counted, and the input pipeline's memory stays modest

_HUGE = textwrap.dedent("""
    import gzip, json, os, resource, sys, threading, time
    d, limit_mb = sys.argv[1], int(sys.argv[2])
    from hhh.data import pipeline, sources, tasks  # imports first: the baseline includes TF

    def rss_mb():
      with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS")) / 1024

    base = rss_mb()

    def watchdog():  # never let a regression take the machine down: fail fast instead
      while True:
        if rss_mb() - base > limit_mb:
          print(f"WATCHDOG: RSS grew by more than {limit_mb} MB", flush=True)
          os._exit(86)
        time.sleep(0.02)
    threading.Thread(target=watchdog, daemon=True).start()

    base_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # the imports' own peak is not ours

    def peak_growth():
      return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base_peak

    res = sources.parse_hh_rlhf(os.path.join(d, "hh_rlhf", "base", "train.jsonl.gz"), prefix="hh")
    parse_mb = peak_growth()
    it = pipeline.make_iterator("hh_rlhf", split="train", family="comparison", seq_len=128, batch_size=8,
                                vocab="byte", seed=0, shuffle=True, repeat=True)
    for _ in range(3):
      next(it)
    print(json.dumps({"records": len(res.records), "bad": res.bad, "truncated": res.truncated,
                      "task_truncated": tasks.truncated_records("hh_rlhf", "train"),
                      "parse_mb": parse_mb, "pipeline_mb": peak_growth()}))
""")


def test_huge_record_is_capped_and_memory_stays_modest(tmp_path):
  ctx = "\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: Tell me more"
  rows = [{"chosen": ctx + f"\n\nAssistant: good {i}", "rejected": ctx + f"\n\nAssistant: bad {i}"} for i in range(6)]
  rows.insert(3, {"chosen": ctx + "\n\nAssistant: " + "y" * 5_000_000, "rejected": ctx + "\n\nAssistant: no"})
  (tmp_path / "hh_rlhf" / "base").mkdir(parents=True)
  _jsonl(tmp_path / "hh_rlhf" / "base" / "train.jsonl.gz", rows)
  script = tmp_path / "huge.py"
  script.write_text(_HUGE)
  env = {**os.environ, "HHH_DATA_DIR": str(tmp_path), "PYTHONPATH": REPO, "CUDA_VISIBLE_DEVICES": "",
         "TF_CPP_MIN_LOG_LEVEL": "2"}
  env.pop("HHH_MAX_TEXT_CHARS", None)
  # Before the cap, 6 records + this one filled seqio's shuffle buffer with ~1,400 tokenised copies (> 23 GB).
  p = subprocess.run([sys.executable, str(script), str(tmp_path), "1000"], env=env, cwd=REPO, capture_output=True,
                     text=True, timeout=600)
  assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-4000:]
  out = json.loads(p.stdout.strip().splitlines()[-1])
  assert out["records"] == 7 and out["bad"] == []
  want = [["hh:train.jsonl.gz:4", f"responses[0] 5000001 -> {sources.MAX_TEXT_CHARS} chars (kept its start)"]]
  assert out["truncated"] == want
  assert out["task_truncated"] == [["hh-base-train:train.jsonl.gz:4", want[0][1]]]
  assert out["parse_mb"] < 500, out
  # With the cap alone the shuffle buffer held ~1,400 copies of the 65,536-token response (482 MB measured on 2
  # cores); tokenize.trim_to_sequence_length cuts records to seq_len + 1 tokens before the buffer: 29-36 MB
  # measured (TF's graph and thread pools; a few MB per parallel tokenisation of the capped text on more cores).
  assert out["pipeline_mb"] < 200, out


def test_show_task_count_lists_truncated_records_like_bad_ones(tmp_path):
  ctx = "\n\nHuman: Hi"
  rows = [{"chosen": ctx + f"\n\nAssistant: good {i} " + "y" * 80, "rejected": ctx + f"\n\nAssistant: bad {i}"}
          for i in range(53)]
  rows.insert(1, {"chosen": 7, "rejected": ctx + "\n\nAssistant: no"})
  (tmp_path / "hh_rlhf" / "base").mkdir(parents=True)
  _jsonl(tmp_path / "hh_rlhf" / "base" / "train.jsonl.gz", rows)
  env = {**os.environ, "HHH_DATA_DIR": str(tmp_path), "HHH_MAX_TEXT_CHARS": "50", "CUDA_VISIBLE_DEVICES": "",
         "TF_CPP_MIN_LOG_LEVEL": "2"}
  p = subprocess.run([sys.executable, os.path.join(REPO, "tools", "show_task.py"), "hh_rlhf", "--split=train",
                      "--n=0", "--count"], env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
  assert p.returncode == 0, p.stderr[-3000:]
  lines = p.stdout.splitlines()
  assert "count: 53 examples in hh_rlhf/train" in lines
  i = lines.index("excluded bad records in hh_rlhf/train: 1")
  assert lines[i + 1] == "  hh-base-train:train.jsonl.gz:2: missing chosen or rejected"
  j = lines.index("truncated records (kept, shortened by the size cap) in hh_rlhf/train: 53")
  listed = lines[j + 1:j + 51]
  assert listed[0] == "  hh-base-train:train.jsonl.gz:1: responses[0] 88 -> 50 chars (kept its start)"
  assert all(": responses[0] " in line and "-> 50 chars" in line for line in listed)
  assert lines[j + 51] == "  ... and 3 more"
