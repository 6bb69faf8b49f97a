"""Vocabulary, dialogue format, the embedded laboratory and the LM pipeline (step 1 of issue 3)."""
import re

import numpy as np
import pytest

from hhh.data import dialogue, lab_corpus, pipeline
from hhh.data import vocab as V


def test_byte_vocabulary_special_ids():
  v = V.get_vocabulary("byte")
  assert V.vocab_size("byte") == 260  # 3 specials + 256 bytes + 1 end-of-context
  assert (V.pad_id(v), V.eos_id(v), V.eoc_id(v)) == (0, 1, 259)
  assert v.encode("Hi") == [ord("H") + 3, ord("i") + 3]
  assert v.decode([ord("H") + 3, 259, ord("i") + 3]) == "Hi"  # the eoc token is not text
  with pytest.raises(ValueError, match="unknown vocabulary"):
    V.get_vocabulary("bpe")


def test_pure_python_byte_vocabulary_matches_seqio():
  # What get_vocabulary("byte") returns on a machine without seqio (tests/test_core_imports.py): same ids/decoding.
  seq, py = V.get_vocabulary("byte"), V.PyByteVocabulary(extra_ids=V.NUM_EXTRA_IDS)
  assert type(seq).__name__ == "ByteVocabulary"
  assert (py.vocab_size, py.pad_id, py.eos_id, py.unk_id, py.extra_ids) == (
      seq.vocab_size, seq.pad_id, seq.eos_id, seq.unk_id, seq.extra_ids) == (260, 0, 1, 2, 1)
  text = "\n\nHuman: héllo — 猫 🐈\n\nAssistant: ok"
  assert py.encode(text) == list(seq.encode(text)) and py.encode(text.encode()) == py.encode(text)
  ids = py.encode(text)
  for probe in (ids, ids[:5] + [259] + ids[5:], ids[:7] + [1] + ids[7:], [0, 2] + ids[:9], ids[:-1] + [300]):
    assert py.decode(probe) == seq.decode(probe), probe


def test_dialogue_format_exact():
  ctx = dialogue.query("What is 2 + 2?")
  assert ctx == "\n\nHuman: What is 2 + 2?\n\nAssistant:"
  assert ctx + dialogue.response("4.") == "\n\nHuman: What is 2 + 2?\n\nAssistant: 4."
  two = dialogue.dialogue([("human", "Hi"), ("assistant", "Hello."), ("human", "Bye")])
  assert two == "\n\nHuman: Hi\n\nAssistant: Hello.\n\nHuman: Bye"
  assert dialogue.split_last_response(ctx + " 4.") == (ctx, " 4.")
  assert dialogue.bigbench_context("Hi") == "\nHuman: Hi\nAssistant:"
  assert dialogue.pretraining_as_dialogue("Some text.") == "\n\nHuman: Some text."


def test_lab_is_deterministic_and_splits_are_disjoint():
  a = lab_corpus.comparisons("validation", seed=3, size=90)
  assert a == lab_corpus.comparisons.__wrapped__("validation", seed=3, size=90)
  assert a != lab_corpus.comparisons("validation", seed=4, size=90)
  assert len(a) == 90 and {r.family for r in a} == set(lab_corpus.FAMILIES)
  tr = {r.context for r in lab_corpus.comparisons("train", seed=3, size=600)}
  te = {r.context for r in lab_corpus.comparisons("test", seed=3, size=90)}
  assert not tr & {r.context for r in a} and not tr & te
  assert all(lab_corpus.split_of(c) == "train" for c in tr)


def test_lab_ground_truth_arithmetic_and_code():
  recs = lab_corpus.comparisons("validation", seed=0, size=300)
  n_arith = n_code = 0
  for r in recs:
    best = r.responses[int(np.argmax(r.scores))]
    assert len(r.responses) == 4 and len(set(r.responses)) == 4 and sorted(r.scores).count(max(r.scores)) == 1
    if r.family == "arith":
      a, op, b = re.search(r"(\d+) ([-+*]) (\d+)", r.context).groups()
      truth = eval(f"{a}{op}{b}")
      vals = [int(re.findall(r"-?\d+", x)[-1]) for x in r.responses]
      assert int(re.findall(r"-?\d+", best)[-1]) == truth
      # closer is better: scores order equals order of |value - truth| buckets
      dist = {s: abs(v - truth) for v, s in zip(vals, r.scores)}
      assert dist[3.0] == 0 and dist[2.0] == 1 and dist[1.0] == 10 and dist[0.0] not in (0, 1, 10)
      n_arith += 1
    elif r.family == "code":
      src = r.context.split("print code print?\n\n")[-1] if False else r.context
      body = src.split("\n\n")[2]
      call = re.search(r"print\((f\(.*\))\)", src).group(1)
      env = {}
      exec(body, env)
      assert int(re.findall(r"-?\d+", best)[-1]) == eval(call, env)
      n_code += 1
  assert n_arith == 100 and n_code == 100


def _lm(**kw):
  args = dict(split="validation", family="lm", seq_len=128, batch_size=8, vocab="byte", seed=0, shuffle=True,
              repeat=True)
  args.update(kw)
  return pipeline.make_iterator("lab_lm", **args)


def test_lm_batches_match_contract_and_spec():
  it = _lm(split="train")
  b = next(it)
  spec = pipeline.family_spec("lm", 8, 128)
  assert set(b) == set(spec)
  for k, (shape, dt) in spec.items():
    assert b[k].shape == shape and b[k].dtype == dt, k
  tgt, inp, seg, pos, w = (b["decoder_target_tokens"], b["decoder_input_tokens"], b["decoder_segment_ids"],
                           b["decoder_positions"], b["decoder_loss_weights"])
  np.testing.assert_array_equal(w, (tgt > 0).astype(np.float32))
  assert tgt.max() < V.vocab_size("byte") and (tgt == 1).any()  # EOS ends documents
  # inputs are the targets shifted right inside each document, starting from 0 at each document start
  starts = pos == 0
  np.testing.assert_array_equal(inp[:, 1:][~starts[:, 1:]], tgt[:, :-1][~starts[:, 1:]])
  assert (inp[starts] == 0).all()


def test_lm_is_deterministic_and_seeded():
  a = [next(_lm()) for _ in range(3)]
  b = [next(_lm()) for _ in range(3)]
  c = next(_lm(seed=1))
  for x, y in zip(a, b):
    for k in x:
      np.testing.assert_array_equal(x[k], y[k])
  assert not np.array_equal(a[0]["decoder_target_tokens"], c["decoder_target_tokens"])


def test_start_batch_resumes_exactly():
  it = _lm(seq_len=64, batch_size=4)
  full = [next(it) for _ in range(8)]
  it2 = _lm(seq_len=64, batch_size=4, start_batch=5)
  rest = [next(it2) for _ in range(3)]
  for x, y in zip(full[5:], rest):
    for k in x:
      np.testing.assert_array_equal(x[k], y[k])
  assert it2.batches == 8


def test_packing_never_lets_a_token_see_another_document():
  L = 256
  v = V.get_vocabulary("byte")
  pieces = set()
  for d in lab_corpus.lm_documents("validation"):
    ids = v.encode(d) + [1]
    pieces.update(tuple(ids[i:i + L]) for i in range(0, len(ids), L))
  it = _lm(seq_len=L, shuffle=False, repeat=False)
  n_multi = 0
  for _ in range(10):
    b = next(it)
    for row in range(b["decoder_segment_ids"].shape[0]):
      seg, pos = b["decoder_segment_ids"][row], b["decoder_positions"][row]
      tgt, inp = b["decoder_target_tokens"][row], b["decoder_input_tokens"][row]
      # the attention mask a decoder builds from segment ids: causal and same (non-padding) document only
      mask = (seg[:, None] == seg[None, :]) & (seg[:, None] > 0) & np.tri(L, dtype=bool)
      n_multi += seg.max() > 1
      for s in range(1, seg.max() + 1):
        idx = np.flatnonzero(seg == s)
        assert tuple(tgt[idx]) in pieces  # a whole document (or piece), nothing from its neighbours
        np.testing.assert_array_equal(pos[idx], np.arange(len(idx)))
        other = np.flatnonzero((seg != s) & (seg > 0))
        assert not mask[np.ix_(idx, other)].any()
        assert inp[idx[0]] == 0  # first input of a document is BOS, not the previous document's last token
  assert n_multi > 0  # packing really happened


def test_family_spec_shapes():
  s = pipeline.family_spec("comparison", 2, 16, k=4)
  assert s["tokens"] == ((2, 4, 16), np.dtype("int32")) and s["score"] == ((2, 4), np.dtype("float32"))
  assert pipeline.family_spec("binary", 3, 8)["label"] == ((3,), np.dtype("float32"))
  assert pipeline.family_spec("multiple_choice", 1, 8, c=5)["target"][0] == (1, 5)
  assert pipeline.family_spec("distill", 1, 8)["loss_weights"] == ((1, 8), np.dtype("float32"))
  with pytest.raises(ValueError):
    pipeline.family_spec("nope", 1, 1)


def test_wrong_family_for_task_is_an_error():
  with pytest.raises(ValueError, match="feeds family"):
    pipeline.make_iterator("lab_lm", split="validation", family="comparison", seq_len=32, batch_size=2,
                           vocab="byte", seed=0, shuffle=False, repeat=False)
