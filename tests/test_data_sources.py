"""Parsers on small fake files in the ORIGINAL formats (written here), including bad records."""
import bz2
import gzip
import json
import os
import zlib

import pytest

from hhh.data import dialogue, pipeline, sources, tasks

BIGBENCH = tasks.bigbench_dir()
needs_bigbench = pytest.mark.skipif(not os.path.exists(os.path.join(BIGBENCH, "hhh_alignment")),
                                    reason=f"real BIG-bench data not found at {BIGBENCH} (set HHH_BIGBENCH_DIR)")


def test_stackexchange_score_rule_hand_computed():
  # round(log2(1 + upvotes)) + 1 if accepted; negative upvotes -> -1
  assert sources.stackexchange_score(0, False) == 0
  assert sources.stackexchange_score(1, False) == 1      # log2(2) = 1
  assert sources.stackexchange_score(2, False) == 2      # log2(3) = 1.585 -> 2
  assert sources.stackexchange_score(4, True) == 3       # log2(5) = 2.32 -> 2, +1
  assert sources.stackexchange_score(10, False) == 3     # log2(11) = 3.46 -> 3
  assert sources.stackexchange_score(22, False) == 5     # log2(23) = 4.52 -> 5
  assert sources.stackexchange_score(-3, True) == -1
  assert sources.stackexchange_score(-1, False) == -1


def test_binary_pmp_transformation():
  pair = sources.comparison("p", "C", [" A", " B"], [1.0, 0.0])
  a, b = sources.binary_pmp(pair)
  assert a["responses"] == ["GOOD: A", "BAD: A"] and a["scores"] == [1.0, 0.0]   # "GOOD:"+A > "BAD:"+A
  assert b["responses"] == ["BAD: B", "GOOD: B"] and b["scores"] == [1.0, 0.0]   # "BAD:"+B > "GOOD:"+B
  assert a["context"] == b["context"] == "C"
  with pytest.raises(ValueError):
    sources.binary_pmp(sources.comparison("q", "C", [" B", " A"], [0.0, 1.0]))


def test_ranked_pairs_ties_give_no_pair():
  rec = sources.comparison("q", "C", ["a", "b", "c"], [2.0, 2.0, 0.0])
  pairs = sources.ranked_pairs(rec)
  assert [(p["responses"], p["id"]) for p in pairs] == [(["a", "c"], "q:0>2"), (["b", "c"], "q:1>2")]


POSTS = b"""<?xml version="1.0" encoding="utf-8"?>
<posts>
  <row Id="1" PostTypeId="1" AcceptedAnswerId="3" Score="5" Title="How to sort?" Body="&lt;p&gt;I have a list.&lt;/p&gt;" />
  <row Id="2" PostTypeId="2" ParentId="1" Score="10" Body="&lt;p&gt;Use sorted().&lt;/p&gt;" />
  <row Id="3" PostTypeId="2" ParentId="1" Score="4" Body="&lt;p&gt;Use list.sort().&lt;/p&gt;" />
  <row Id="4" PostTypeId="2" ParentId="1" Score="-2" Body="&lt;p&gt;Write bubble sort.&lt;/p&gt;" />
  <row Id="5" PostTypeId="2" ParentId="1" Body="&lt;p&gt;no score&lt;/p&gt;" />
  <row Id="6" PostTypeId="2" ParentId="1" Score="3" Body="" />
  <row Id="7" PostTypeId="1" Score="1" Title="Lonely" Body="one answer" />
  <row Id="8" PostTypeId="2" ParentId="7" Score="1" Body="only me" />
  <row Id="9" PostTypeId="2" ParentId="1" Score="1" Body="bad \xff\xfe bytes" />
  <row Id="10" PostTypeId="2" ParentId="1" Score="1" Body="unclosed
</posts>
"""


def test_stackexchange_posts_xml(tmp_path):
  p = tmp_path / "Posts.xml"
  p.write_bytes(POSTS)
  res = sources.parse_stackexchange(str(p), site="se-test")
  assert len(res.records) == 1
  r = res.records[0]
  assert r["context"] == dialogue.query("How to sort?\n\nI have a list.")
  assert r["responses"] == [" Use sorted().", " Use list.sort().", " Write bubble sort."]
  # 10 -> round(log2 11)=3; 4 accepted -> round(log2 5)+1 = 3; -2 -> -1
  assert r["scores"] == [3.0, 3.0, -1.0]
  bad = dict(res.bad)
  assert set(bad) == {"se-test-5", "se-test-6", "se-test-7", "se-test-9", "se-test-10"}
  assert "Score" in bad["se-test-5"] and "empty" in bad["se-test-6"] and "fewer than two" in bad["se-test-7"]
  assert "UTF-8" in bad["se-test-9"] and "XML" in bad["se-test-10"]
  pairs = sources.ranked_pairs(r)  # the tie (3, 3) gives no pair
  assert [p["responses"][1] for p in pairs] == [" Write bubble sort.", " Write bubble sort."]


def _jsonl(path, objs, raw_lines=()):
  data = b"".join(json.dumps(o).encode() + b"\n" for o in objs) + b"".join(raw_lines)
  if str(path).endswith(".gz"):
    data = gzip.compress(data)
  elif str(path).endswith(".bz2"):
    data = bz2.compress(data)
  path.write_bytes(data)
  return str(path)


def test_reddit_comment_dump(tmp_path):
  comments = [
      {"id": "c1", "link_id": "t3_p1", "parent_id": "t3_p1", "body": "Great answer", "score": 50},
      {"id": "c2", "link_id": "t3_p1", "parent_id": "t3_p1", "body": "meh", "score": 2},
      {"id": "c3", "link_id": "t3_p1", "parent_id": "t1_c1", "body": "a reply", "score": 99},
      {"id": "c4", "link_id": "t3_p1", "parent_id": "t3_p1", "body": "[deleted]", "score": 7},
      {"id": "c5", "link_id": "t3_p1", "parent_id": "t3_p1", "body": "no karma"},
      {"id": "c6", "link_id": "t3_p2", "parent_id": "t3_p2", "body": "alone", "score": 1},
  ]
  cp = _jsonl(tmp_path / "RC_2015-01.bz2", comments, [b"{not json\n"])
  sp = _jsonl(tmp_path / "RS_2015-01", [{"id": "p1", "title": "Why is the sky blue?", "selftext": ""}])
  res = sources.parse_reddit([cp], [sp])
  assert res.records == [sources.comparison("reddit-t3_p1", dialogue.query("Why is the sky blue?"),
                                            [" Great answer", " meh"], [50, 2])]
  bad = dict(res.bad)
  assert "deleted" in bad["reddit-c4"] and "score" in bad["reddit-c5"] and "fewer" in bad["reddit-t3_p2"]
  assert any("malformed JSON" in r for r in bad.values())
  assert "reddit-c3" not in bad  # replies are not candidates, and not errors


WIKI = """<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/">
  <page><title>Cats</title><ns>0</ns><id>1</id>
    <revision><id>100</id><comment>start</comment><text>Cats are mammals.
They purr.
Kittens are young cats.</text></revision>
    <revision><id>101</id><comment></comment><text>Cats are mammals.
They are STUPID LOL.
Kittens are young cats.</text></revision>
    <revision><id>102</id><comment>Reverted edits by Vandal (talk) to last version by Bob</comment><text>Cats are mammals.
They purr.
Kittens are young cats.</text></revision>
    <revision><id>103</id><comment>copyedit</comment><text>Cats are small mammals.
They purr.
Kittens are young cats.</text></revision>
    <revision><id>104</id><comment>rvv</comment><text>something else</text></revision>
  </page>
</mediawiki>"""


def test_wikipedia_reverted_vandalism(tmp_path):
  p = tmp_path / "enwiki-pages-meta-history1.xml.bz2"
  p.write_bytes(bz2.compress(WIKI.encode()))
  res = sources.parse_wikipedia(str(p))
  assert res.records == [sources.comparison("wiki-1:101", "Wikipedia article: Cats\n\nCats are mammals.\n",
                                            ["They purr.", "They are STUPID LOL."], [1.0, 0.0])]
  assert res.bad == [("wiki-1:103", "revert comment but text differs from the revision before the edit")]


def test_hh_rlhf_jsonl_gz(tmp_path):
  ctx = "\n\nHuman: Hi there\n\nAssistant: Hello!\n\nHuman: Tell me a joke"
  rows = [
      {"chosen": ctx + "\n\nAssistant: Why did the chicken cross the road?",
       "rejected": ctx + "\n\nAssistant: No."},
      {"chosen": ctx + "\n\nAssistant: Same", "rejected": ctx + "\n\nAssistant: Same"},
      {"chosen": ctx + "\n\nAssistant: x"},
      {"chosen": "\n\nHuman: a\n\nAssistant: b", "rejected": "\n\nHuman: c\n\nAssistant: d"},
      {"chosen": ctx + "\n\nAssistant:", "rejected": ctx + "\n\nAssistant: ok"},
  ]
  p = _jsonl(tmp_path / "train.jsonl.gz", rows, [b'{"chosen": "\xff"}\n'])
  res = sources.parse_hh_rlhf(p, prefix="hh")
  assert res.records == [sources.comparison("hh:train.jsonl.gz:1", ctx + "\n\nAssistant:",
                                            [" Why did the chicken cross the road?", " No."], [1, 0])]
  reasons = [r for _, r in res.bad]
  assert reasons == ["identical responses", "missing chosen or rejected",
                     "chosen and rejected have different contexts", "empty response", "invalid UTF-8 at byte 12"]
  assert [i for i, _ in res.bad][-1] == "hh:train.jsonl.gz:6"


def test_summarize_comparisons(tmp_path):
  info = {"id": "t3_x", "post": "My cat ran away.", "title": "Lost cat", "subreddit": "pets"}
  rows = [{"info": info, "summaries": [{"text": " Cat lost.", "policy": "a"}, {"text": "Dog.", "policy": "b"}],
           "choice": 1, "split": "train"},
          {"info": info, "summaries": [{"text": "x"}], "choice": 0}]
  res = sources.parse_summarize(_jsonl(tmp_path / "batch3.json", rows))
  assert res.records[0]["responses"] == [" Dog.", " Cat lost."]  # choice 1 is the better summary
  assert res.records[0]["context"] == dialogue.query("Summarize this post.\n\nTitle: Lost cat\n\nMy cat ran away.")
  assert [r for _, r in res.bad] == ["missing info.post (or info.article), two summaries or choice"]


CNNDM_INFO = {"id": "167f80cc6634b166a699d182e25c81a2349d82d2", "site": "dailymail",
              "title": "Newcastle midfielder faces disciplinary action",
              "article": "Newcastle stand-in skipper Moussa Sissoko is facing disciplinary action.\n\nHe was sent off."}


def test_summarize_cnndm_comparisons_use_the_article(tmp_path):
  # comparisons/*.json also matches the CNN/DM batches: info has `article` (and `site`), no `post`.
  sums = [{"text": " Sissoko faces action.", "policy": "ref", "note": None},
          {"text": " Newcastle lost.", "policy": "sup", "note": "vague"}]
  rows = [{"info": CNNDM_INFO, "summaries": sums, "choice": 0, "worker": "w", "batch": "cnndm1", "split": "valid2",
           "extra": {"confidence": 7}},
          {"info": {**CNNDM_INFO, "id": None}, "summaries": sums, "choice": 1},
          {"info": {**CNNDM_INFO, "article": 5}, "summaries": sums, "choice": 0},
          {"info": {"id": "x", "site": "cnn", "title": "No text"}, "summaries": sums, "choice": 0}]
  res = sources.parse_summarize(_jsonl(tmp_path / "cnndm1.json", rows))
  ctx = dialogue.query("Summarize this news article.\n\nTitle: Newcastle midfielder faces disciplinary action\n\n"
                       "Newcastle stand-in skipper Moussa Sissoko is facing disciplinary action.\n\nHe was sent off.")
  crc = zlib.crc32(CNNDM_INFO["article"].encode())
  assert res.records == [
      sources.comparison(f"cnndm-{CNNDM_INFO['id']}:cnndm1.json:1", ctx, [" Sissoko faces action.", " Newcastle lost."],
                         [1.0, 0.0]),
      sources.comparison(f"cnndm-article{crc:08x}:cnndm1.json:2", ctx, [" Newcastle lost.", " Sissoko faces action."],
                         [1.0, 0.0])]
  assert res.bad == [("tldr:cnndm1.json:3", "missing info.post (or info.article), two summaries or choice"),
                     ("tldr:cnndm1.json:4", "missing info.post (or info.article), two summaries or choice")]


def test_summarize_task_reads_tldr_and_cnndm_batches(tmp_path, monkeypatch):
  d = tmp_path / "summarize_from_feedback" / "comparisons"
  d.mkdir(parents=True)
  tldr = {"id": "t3_x", "post": "My cat ran away.", "title": "Lost cat", "subreddit": "pets"}
  sums = [{"text": "A.", "policy": "a"}, {"text": "B.", "policy": "b"}]
  _jsonl(d / "batch3.json", [{"info": tldr, "summaries": sums, "choice": 0}])
  _jsonl(d / "cnndm1.json", [{"info": CNNDM_INFO, "summaries": sums, "choice": 1}])
  monkeypatch.setenv("HHH_DATA_DIR", str(tmp_path))
  tasks.clear_parse_cache()
  try:
    got = {s: tasks.parsed("summarize_from_feedback", s) for s in ("train", "validation")}
  finally:
    tasks.clear_parse_cache()
  assert all(r.bad == [] for r in got.values())
  ids = sorted(r["id"] for res in got.values() for r in res.records)
  assert ids == [f"cnndm-{CNNDM_INFO['id']}:cnndm1.json:1", "tldr-t3_x:batch3.json:1"]
  for s, res in got.items():
    assert all(sources.hash_split(r["id"].split(":")[0]) == s for r in res.records)


def test_eli5_ranked_answers(tmp_path):
  rows = [{"q_id": "q1", "title": "Why do we sleep?", "selftext": "",
           "answers": {"a_id": ["a", "b", "c"], "text": ["To rest.", "Dunno", "Brains clean up."],
                       "score": [5, 1, 9]}},
          {"q_id": "q2", "title": "T", "answers": {"a_id": ["a", "b"], "text": ["x", "y"], "score": [3, -1]}},
          {"q_id": "q3", "title": "T", "answers": {"a_id": ["a", "b"], "text": ["x", "y"]}},
          {"q_id": "q4", "title": "T", "answers": {"a_id": ["a", "b"], "text": ["x", "y"], "score": [2, 2]}}]
  res = sources.parse_eli5(_jsonl(tmp_path / "train.jsonl", rows))
  assert res.records == [sources.comparison("eli5-q1", dialogue.query("Why do we sleep?"),
                                            [" To rest.", " Dunno", " Brains clean up."], [5, 1, 9])]
  assert dict(res.bad) == {"eli5-q2": "negative answer score", "eli5-q3": "missing or malformed answer scores",
                           "eli5-q4": "fewer than two answers with different scores"}
  assert [p["responses"] for p in sources.ranked_pairs(res.records[0])] == [
      [" To rest.", " Dunno"], [" Brains clean up.", " To rest."], [" Brains clean up.", " Dunno"]]


def test_ethics_commonsense_csv(tmp_path):
  p = tmp_path / "cm_train.csv"
  p.write_text('label,input,is_short,edited\n1,"I kicked my dog.",True,False\n0,I fed my dog.,True,False\n'
               ',missing label,True,False\n')
  res = sources.parse_ethics(str(p))
  yes, no = " Yes, it is acceptable.", " No, it is wrong."
  assert [r["responses"] for r in res.records] == [[no, yes], [yes, no]]
  assert res.bad == [("ethics-cm_train.csv:4", "missing label or input")]
  b = sources.comparisons_to_binary(res.records)
  assert [(x["response"], x["label"]) for x in b[:2]] == [(no, 1.0), (yes, 0.0)]


def test_file_tasks_through_the_pipeline(tmp_path, monkeypatch):
  (tmp_path / "stackexchange").mkdir()
  (tmp_path / "stackexchange" / "Posts.xml").write_bytes(POSTS)
  monkeypatch.setenv("HHH_DATA_DIR", str(tmp_path))
  tasks.clear_parse_cache()
  split = sources.hash_split("se-stackexchange-1")
  it = pipeline.make_iterator("stackexchange_binary", split=split, family="comparison", seq_len=64, batch_size=8,
                              vocab="byte", seed=0, shuffle=False, repeat=False)
  b = next(it)
  assert it.stats["examples"] == 4  # 2 pairs (the tie gives none) x 2 binary comparisons
  assert b["valid"].tolist() == [[1, 1]] * 4 + [[0, 0]] * 4
  assert len(tasks.bad_records("stackexchange_binary", split)) == 5
  tasks.clear_parse_cache()


def test_missing_files_name_the_path_and_url(tmp_path, monkeypatch):
  monkeypatch.setenv("HHH_DATA_DIR", str(tmp_path))
  tasks.clear_parse_cache()
  with pytest.raises(sources.MissingData, match="huggingface.co/datasets/Anthropic/hh-rlhf"):
    tasks.parsed("hh_rlhf", "train")


@needs_bigbench
def test_hhh_alignment_counts_on_real_data():
  res = tasks.parsed("hhh_alignment_mc", "test")
  assert len(res.records) == 221 and not res.bad
  counts = {s: len(tasks.parsed(f"hhh_alignment_{s}", "test").records) for s in sources.BIGBENCH_SUBSETS}
  assert counts == {"harmless": 58, "helpful": 59, "honest": 61, "other": 43}
  assert all(sorted(r["targets"]) == [0.0, 1.0] for r in res.records)
  r = res.records[0]
  assert r["context"].startswith("\n\nHuman: ") and r["context"].endswith("\n\nAssistant:")
  bb = tasks.parsed("hhh_alignment_bigbench_mc", "test").records[0]
  assert bb["context"].startswith("\nHuman: ") and bb["context"].endswith("\nAssistant:")


@needs_bigbench
def test_truthful_qa_mc_on_real_data():
  res = tasks.parsed("truthful_qa_mc", "test")
  assert len(res.records) == 299 and not res.bad
  assert all(sum(r["targets"]) == 1.0 for r in res.records)
  it = pipeline.make_iterator("truthful_qa_mc", split="test", family="multiple_choice", seq_len=256, batch_size=64,
                              vocab="byte", seed=0, shuffle=False, repeat=False, c=5)
  batches = list(it)
  assert it.stats["examples"] == 299 and len(batches) == 5
  b = batches[0]
  assert (b["target"].sum(1) == 1).all() and b["valid"].sum() == sum(len(r["choices"]) for r in res.records[:64])
