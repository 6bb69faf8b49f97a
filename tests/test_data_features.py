"""Feature converters (exact values, truncation rule), sharding, TFDS tax tasks, mixtures, SPM vocabulary."""
import os
import subprocess
import sys

import numpy as np
import pytest
import seqio
import tensorflow as tf
import tensorflow_datasets as tfds

from hhh.data import features as F
from hhh.data import lab_corpus, pipeline, tasks
from hhh.data import vocab as V

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _one(ds):
  return next(iter(ds.as_numpy_iterator()))


def test_comparison_converter_exact_left_truncation():
  # context 10 tokens, responses of 3 and 9 tokens, L = 8, end-of-context 99
  ds = tf.data.Dataset.from_tensors({
      "context": tf.range(10, 20, dtype=tf.int32),
      "responses": tf.ragged.constant([[1, 2, 3], [4, 5, 6, 7, 8, 9, 10, 11, 12]], dtype=tf.int32),
      "scores": tf.constant([1.0, 0.0])})
  ex = _one(F.ComparisonFeatureConverter(99, k=3)(ds, {"tokens": 8}))
  np.testing.assert_array_equal(ex["tokens"], [[16, 17, 18, 19, 1, 2, 3, 99],   # context keeps its LAST 4 tokens
                                               [4, 5, 6, 7, 8, 9, 10, 99],       # response cut at its end
                                               [0] * 8])                         # padding response
  np.testing.assert_array_equal(ex["response_start"], [4, 0, 0])
  np.testing.assert_array_equal(ex["eoc_index"], [7, 7, 0])
  np.testing.assert_array_equal(ex["score"], [1, 0, 0])
  np.testing.assert_array_equal(ex["valid"], [1, 1, 0])
  assert ex["_stat_truncated_context"] == 1 and ex["_stat_truncated_response"] == 1
  # too many responses for k: extra ones are dropped and counted
  ex = _one(F.ComparisonFeatureConverter(99, k=1)(ds, {"tokens": 16}))
  assert ex["tokens"].shape == (1, 16) and ex["_stat_dropped_responses"] == 1
  np.testing.assert_array_equal(ex["tokens"][0, :14], list(range(10, 20)) + [1, 2, 3, 99])


def test_multiple_choice_record_without_choices_is_a_counted_invalid_row():
  # e.g. a LAMBADA passage that is empty: no choice at all; it must not crash the converter
  ds = tf.data.Dataset.from_tensor_slices({
      "context": tf.ragged.constant([[5, 6], []], dtype=tf.int32),
      "choices": tf.ragged.constant([[[7, 8]], []], dtype=tf.int32, ragged_rank=2),
      "targets": tf.ragged.constant([[1.0], [1.0]], dtype=tf.float32)})
  ds = ds.map(lambda ex: {"context": ex["context"], "choices": ex["choices"], "targets": ex["targets"]})
  got = list(F.MultipleChoiceFeatureConverter(99, k=2)(ds, {"tokens": 6}).as_numpy_iterator())
  np.testing.assert_array_equal(got[0]["valid"], [1, 0])
  np.testing.assert_array_equal(got[0]["tokens"][0], [5, 6, 7, 8, 99, 0])
  assert got[0][F.STAT_PREFIX + "no_responses"] == 0
  np.testing.assert_array_equal(got[1]["valid"], [0, 0])
  np.testing.assert_array_equal(got[1]["tokens"], np.zeros((2, 6)))
  assert got[1][F.STAT_PREFIX + "no_responses"] == 1 and got[1]["target"].sum() == 0


def test_byte_encoding_of_empty_strings():
  from hhh.data import tokenize
  vocab = V.get_vocabulary("byte")
  for strings, want in ([[""], [[]]], [["", ""], [[], []]], [["", "ab"], [[], [97 + 3, 98 + 3]]]):
    got = tokenize.encode_strings(vocab, tf.constant(strings)).to_list()
    assert got == want, (strings, got)


def test_binary_and_distill_converters_exact():
  ds = tf.data.Dataset.from_tensors({"context": tf.constant([5, 6, 7]), "response": tf.constant([8, 9]),
                                     "label": tf.constant(1.0)})
  ex = _one(F.BinaryFeatureConverter(42)(ds, {"tokens": 8}))
  np.testing.assert_array_equal(ex["tokens"], [5, 6, 7, 8, 9, 42, 0, 0])
  assert (ex["response_start"], ex["eoc_index"], ex["label"], ex["valid"]) == (3, 5, 1.0, 1.0)
  assert ex["_stat_truncated_context"] == 0
  ds = tf.data.Dataset.from_tensors({"text": tf.constant([3, 4, 5])})
  ex = _one(F.DistillFeatureConverter(42)(ds, {"tokens": 5}))
  np.testing.assert_array_equal(ex["tokens"], [3, 4, 5, 0, 0])
  np.testing.assert_array_equal(ex["loss_weights"], [1, 1, 0, 0, 0])


def test_imitation_loss_only_on_responses_and_eos():
  it = pipeline.make_iterator("lab_imitation", split="validation", family="lm", seq_len=256, batch_size=2,
                              vocab="byte", seed=0, shuffle=False, repeat=False)
  b = next(it)
  v = V.get_vocabulary("byte")
  first = lab_corpus.imitation_pairs("validation")[0]
  seg = b["decoder_segment_ids"][0]
  idx = np.flatnonzero(seg == 1)
  tgt, w = b["decoder_target_tokens"][0][idx], b["decoder_loss_weights"][0][idx]
  n_ctx = len(v.encode(first[1]))
  assert v.decode(tgt.tolist()) == first[1] + first[2]
  assert (w[:n_ctx] == 0).all() and (w[n_ctx:] == 1).all() and tgt[-1] == 1  # response + EOS carry the loss


def test_lab_compare_batches():
  it = pipeline.make_iterator("lab_compare", split="validation", family="comparison", seq_len=256, batch_size=8,
                              vocab="byte", seed=0, shuffle=False, repeat=False, k=4)
  b = next(it)
  v = V.get_vocabulary("byte")
  rec = lab_corpus.comparisons("validation")[0]
  for j in range(4):
    toks = b["tokens"][0, j]
    e, s = b["eoc_index"][0, j], b["response_start"][0, j]
    assert toks[e] == V.eoc_id(v) and (toks[e + 1:] == 0).all()
    assert v.decode(toks[s:e].tolist()) == rec.responses[j]
    assert v.decode(toks[:s].tolist()) == rec.context
  np.testing.assert_array_equal(b["score"][0], rec.scores)
  assert b["valid"].all()


def test_four_hosts_are_disjoint_and_cover():
  provider = seqio.get_mixture_or_task("lab_binary")
  every = [x["id"] for x in provider.get_dataset(None, split="validation", shuffle=False).as_numpy_iterator()]
  shards = [[x["id"] for x in provider.get_dataset(None, split="validation", shuffle=True, seed=3,
                                                   shard_info=seqio.ShardInfo(i, 4)).as_numpy_iterator()]
            for i in range(4)]
  sets = [set(s) for s in shards]
  assert all(len(s) == len(set(s)) for s in shards)
  for i in range(4):
    for j in range(i + 1, 4):
      assert not sets[i] & sets[j]
  assert set().union(*sets) == set(every) and sum(map(len, shards)) == len(every) == 2400
  # and through make_iterator: per-host example counts add up to the whole split
  n = 0
  for i in range(4):
    it = pipeline.make_iterator("lab_binary", split="validation", family="binary", seq_len=32, batch_size=64,
                                vocab="byte", seed=3, shuffle=True, repeat=False, shard_index=i, num_shards=4)
    list(it)
    n += it.stats["examples"]
  assert n == 2400


@pytest.mark.parametrize("task,c", [("tax_hellaswag", 4), ("tax_arc_easy", 8), ("tax_openbookqa", 4),
                                    ("tax_piqa", 2), ("tax_lambada", 1)])
def test_tax_tasks_through_tfds_mock(task, c):
  split = "validation"
  # 6 mock examples include, for lambada, a one-word passage (an empty context), which once crashed the tokenizer
  with tfds.testing.mock_data(num_examples=6):
    it = pipeline.make_iterator(task, split=split, family="multiple_choice", seq_len=64, batch_size=8, vocab="byte",
                                seed=0, shuffle=False, repeat=False, c=c)
    b = next(it)
  assert it.stats["examples"] == 6 and it.stats["no_responses"] == 0
  assert b["tokens"].shape == (8, c, 64)
  assert (b["valid"][:6].sum(1) >= 1).all() and b["valid"][6:].sum() == 0
  # mock labels are random (possibly out of range), so check structure: gold only on real choices, at most one
  assert set(np.unique(b["target"])) <= {0.0, 1.0} and (b["target"] <= b["valid"]).all()
  assert (b["target"].sum(1) <= 1).all() or task == "tax_arc_easy"
  if task == "tax_lambada":
    np.testing.assert_array_equal(b["target"][:6, 0], [1] * 6)
  e = b["eoc_index"][0, 0]
  assert b["tokens"][0, 0, e] == V.eoc_id("byte")


def test_local_files_mixture_is_about_90_10(tmp_path, monkeypatch):
  (tmp_path / "text").mkdir()
  (tmp_path / "code").mkdir()
  for i in range(60):
    (tmp_path / "text" / f"t{i}.txt").write_text(f"Plain prose number {i}.\n\nSecond paragraph.")
    (tmp_path / "code" / f"c{i}.py").write_text(f"def f{i}(x):\n    return x + {i}\n")
  monkeypatch.setenv("HHH_LOCAL_TEXT_GLOB", str(tmp_path / "text" / "*.txt"))
  monkeypatch.setenv("HHH_LOCAL_CODE_GLOB", str(tmp_path / "code" / "*.py"))
  tasks.clear_parse_cache()
  ds = seqio.get_mixture_or_task("local_pretrain").get_dataset({"targets": 64}, split="train", shuffle=True,
                                                               seed=0, num_epochs=None)
  v = V.get_vocabulary("byte")
  code = sum(v.decode(x["targets"].tolist()).startswith("def ") for x in ds.take(1000).as_numpy_iterator())
  assert 60 <= code <= 140  # ~10% code (binomial sd ~ 9.5)
  tasks.clear_parse_cache()


def test_spm_vocab_round_trips_dialogue_and_feeds_the_pipeline(tmp_path):
  corpus = tmp_path / "corpus.txt"
  corpus.write_text("\n".join(lab_corpus.lm_documents("validation")))
  out = subprocess.run([sys.executable, os.path.join(REPO, "tools", "train_vocab.py"), f"--input={corpus}",
                        "--vocab_size=700", f"--output={tmp_path / 'v'}"], capture_output=True, text=True)
  assert out.returncode == 0, out.stderr[-2000:]
  name = f"spm:{tmp_path / 'v.model'}"
  v = V.get_vocabulary(name)
  s = "\n\nHuman: What is  12 * 3?\n\nAssistant: 12 * 3 = 36.\n\n\tdone"
  assert v.decode(v.encode(s)) == s
  assert (V.pad_id(v), V.eos_id(v), V.eoc_id(v), V.vocab_size(v)) == (0, 1, V.vocab_size(v) - 1, v.vocab_size)
  it = pipeline.make_iterator("lab_compare_pair", split="validation", family="comparison", seq_len=128,
                              batch_size=4, vocab=name, seed=0, shuffle=False, repeat=False)
  b = next(it)
  rec = lab_corpus.pairs("validation")[0]
  s0, e0 = b["response_start"][0, 0], b["eoc_index"][0, 0]
  assert b["tokens"][0, 0, e0] == V.eoc_id(v)
  assert v.decode(b["tokens"][0, 0, s0:e0].tolist()) == rec.responses[0]
  assert b["tokens"].max() < V.vocab_size(v)


def test_lab_compare_binary_is_the_good_bad_transformation():
  recs = seqio.get_mixture_or_task("lab_compare_binary").get_dataset(None, split="validation", shuffle=False)
  a, b = list(recs.take(2).as_numpy_iterator())
  v = V.get_vocabulary("byte")
  pair = lab_corpus.pairs("validation")[0]
  assert [v.decode(r.tolist()) for r in a["responses"]] == ["GOOD:" + pair.responses[0], "BAD:" + pair.responses[0]]
  assert [v.decode(r.tolist()) for r in b["responses"]] == ["BAD:" + pair.responses[1], "GOOD:" + pair.responses[1]]
  assert a["scores"].tolist() == b["scores"].tolist() == [1.0, 0.0]


def test_show_task_cli():
  out = subprocess.run([sys.executable, os.path.join(REPO, "tools", "show_task.py"), "lab_compare_pair",
                        "--split=test", "--n=1", "--count"], capture_output=True, text=True, cwd=REPO)
  assert out.returncode == 0, out.stderr[-2000:]
  assert "Human:" in out.stdout and "count: 1200 examples in lab_compare_pair/test" in out.stdout
  h = subprocess.run([sys.executable, os.path.join(REPO, "tools", "show_task.py"), "--help"], capture_output=True,
                     text=True)
  assert h.returncode == 0 and "--count" in h.stdout


# -----------------------------------------------------------------------------------------------------------------
# Records are cut to length BEFORE seqio's shuffle buffer, and the batches are exactly what they were without it

def _untrimmed_dataset(task, *, family, seq_len, batch_size, k, c, seed):
  """The pipeline as it was before tokenize.trim_to_sequence_length: seqio tokenises, shuffles and repeats whole
  records (sequence_length=None except for plain LM), and only the converter cuts them."""
  kind = tasks.kind_of(task)
  provider = seqio.get_mixture_or_task(tasks.ensure_task(task, "byte"))
  ds = provider.get_dataset(sequence_length={"targets": seq_len} if kind == "lm" else None, split="train",
                            shuffle=True, seed=seed, num_epochs=None, use_cached=False)
  conv = pipeline.make_converter(family, kind, V.get_vocabulary("byte"), k, c)
  ds = conv(ds, {"targets": seq_len} if family == "lm" else {"tokens": seq_len})
  if family == "lm":
    ds = ds.map(lambda ex: {**ex, "decoder_loss_weights": tf.cast(ex["decoder_loss_weights"], tf.float32)})
  return ds.batch(batch_size, drop_remainder=True)


def _long_records(kind):
  """Records longer than any seq_len used below (both ends marked), short ones, and odd ones (more responses than
  k, one response longer than L while the context fits, a context longer than L with a tiny response)."""
  long_ctx = "<" + "".join(chr(ord("a") + i % 26) for i in range(300)) + ">"
  long_resp = "[" + "".join(chr(ord("A") + i % 26) for i in range(300)) + "]"
  out = []
  for i in range(12):
    ctx = [long_ctx, f"short context {i}", long_ctx + str(i)][i % 3]
    r1 = [f" ok {i}", long_resp, long_resp + str(i)][(i // 3) % 3]
    r2 = f" no {i}" + ("!" * (i * 7))
    if kind == "comparison":
      rs = [r1, r2] + ([f" third {i}"] if i % 4 == 0 else [])
      scores = [float(len(rs) - j) for j in range(len(rs))]
      out.append({"id": str(i), "context": ctx, "responses": rs, "scores": scores})
    elif kind == "multiple_choice":
      ch = [r1, r2, " x", " y", " z"][:2 + i % 4]
      out.append({"id": str(i), "context": ctx, "choices": ch, "targets": [1.0] + [0.0] * (len(ch) - 1)})
    elif kind == "binary":
      out.append({"id": str(i), "context": ctx, "response": r1, "label": float(i % 2)})
    elif kind == "imitation":
      out.append({"id": str(i), "inputs": ctx, "targets": r1})
    elif kind == "distill":
      out.append({"id": str(i), "text": ctx + r1})
  return out


@pytest.mark.parametrize("kind,family", [("comparison", "comparison"), ("multiple_choice", "multiple_choice"),
                                         ("binary", "binary"), ("imitation", "lm"), ("distill", "distill")])
def test_trimming_before_the_shuffle_buffer_leaves_batches_bit_identical(kind, family):
  name = f"_test_trim_{kind}"
  recs = _long_records(kind)
  tasks.define_task(name, kind, lambda v: tasks.function_source(lambda split: recs, kind, ["train"]),
                    shuffle_buffer_size=50)
  try:
    for seq_len, bs, k, c in ((16, 4, 2, 3), (40, 3, 3, 4), (301, 5, 2, 4)):
      new = pipeline.make_dataset(name, split="train", family=family, seq_len=seq_len, batch_size=bs, vocab="byte",
                                  seed=7, shuffle=True, repeat=True, k=k, c=c)
      old = _untrimmed_dataset(name, family=family, seq_len=seq_len, batch_size=bs, k=k, c=c, seed=7)
      stats = {}
      for a, b in zip(new.take(12).as_numpy_iterator(), old.take(12).as_numpy_iterator()):
        assert sorted(a) == sorted(b)
        for f in a:
          assert a[f].dtype == b[f].dtype and a[f].shape == b[f].shape, f
          np.testing.assert_array_equal(a[f], b[f], err_msg=f"{name} L={seq_len} {f}")
          if f.startswith(F.STAT_PREFIX):
            stats[f] = stats.get(f, 0) + int(a[f].sum())
      if seq_len < 300:  # the records really were cut, at both ends where the family has two
        if family == "distill":
          assert stats[F.STAT_PREFIX + "truncated_text"] > 0
        else:
          assert stats[F.STAT_PREFIX + "truncated_context"] > 0 and stats[F.STAT_PREFIX + "truncated_response"] > 0
  finally:
    tasks.forget_task(name)


def test_trim_keeps_the_context_end_and_the_response_start():
  from hhh.data import tokenize as tok
  ds = tf.data.Dataset.from_tensors({"context": tf.range(10, dtype=tf.int32),
                                     "responses": tf.ragged.constant([[1, 2, 3, 4, 5, 6], [7]], dtype=tf.int32),
                                     "scores": tf.constant([1.0, 0.0])})
  feats = tasks.output_features("comparison", "byte")
  ex = _one(tok.trim_to_sequence_length(ds, {"tokens": 3}, feats))
  np.testing.assert_array_equal(ex["context"], [6, 7, 8, 9])
  assert [list(r) for r in ex["responses"]] == [[1, 2, 3, 4], [7]]
  np.testing.assert_array_equal(ex["scores"], [1.0, 0.0])
  assert _one(tok.trim_to_sequence_length(ds, None, feats))["context"].shape == (10,)  # no length: unchanged
