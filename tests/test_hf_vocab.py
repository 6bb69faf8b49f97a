"""Vocabularies backed by a Hugging Face tokenizer.json ("hf:PATH"): ids, special ids, exact round trips, the TF
path, the data pipeline and the TensorFlow-free core. No network: every tokenizer is trained here with `tokenizers`.

Tokenizers built (all on the embedded laboratory's dialogues):
  pythia  byte-level BPE, "<|endoftext|>" = 0 and "<|padding|>" = 1 first (as Pythia), a directory with a
          tokenizer_config.json naming eos/bos/unk "<|endoftext|>" and pad "<|padding|>"
  gpt2    byte-level BPE with "<|endoftext|>" appended LAST (as GPT-2: id 0 is "!"), a bare file (no config)
  llama   BPE with byte fallback, "<unk>" 0, "<s>" 1, "</s>" 2, then <0x00>..<0xFF> (as Llama-2), a
          Metaspace(prepend_scheme="first") pre-tokeniser (transformers' current conversion), a post-processor that
          adds "<s>", a directory with tokenizer_config.json (eos "</s>") and an (ignored) special_tokens_map.json
  llama_prepend  the same model as Llama-2's hub file writes it: Prepend("▁") + Replace(" ", "▁") normaliser, no
          pre-tokeniser, Strip decoder; a bare file named tokenizer.json in a directory without configs
  llama3  byte-level BPE with "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>" appended; tokenizer_config.json
          names eos "<|eot_id|>" (an instruct model)
"""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

tokenizers = pytest.importorskip("tokenizers")
from tokenizers import decoders, models, normalizers, pre_tokenizers, processors, trainers  # noqa: E402

import tensorflow as tf  # noqa: E402

from hhh.data import dialogue, lab_corpus, pipeline  # noqa: E402
from hhh.data import features as F  # noqa: E402
from hhh.data import tokenize as tok_lib  # noqa: E402
from hhh.data import vocab as V  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DIALOGUES = [
    dialogue.query("What is 2 + 2?") + dialogue.response("4."),
    dialogue.dialogue([("human", "Hi"), ("assistant", "Hello!  How can I help?"), ("human", "Bye")]),
    "\n\nHuman: Héllo — naïve café, 猫 🐈 ¿Qué?\n\nAssistant: Ça va!\n\n\tdone\n",
    "\n\nHuman: def f(x):\n    return x * 3 + 1\n\nAssistant: f(2) = 7   (tabs\tand  double  spaces)",
    dialogue.query("Ünïcödé ✓ ∑ ½ 𝔘") + dialogue.response("Ok: ☃ \u00a0 nbsp, zero\u200bwidth."),
    "plain text without a leading newline",
    "",
]


def _corpus():
  return lab_corpus.lm_documents("validation")[:300] + [r for c in lab_corpus.comparisons("validation")[:50] for r in c.responses]


def _byte_level(specials_first, specials_last):
  tok = tokenizers.Tokenizer(models.BPE())
  tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
  tok.decoder = decoders.ByteLevel()
  tok.post_processor = processors.ByteLevel(trim_offsets=False)
  tr = trainers.BpeTrainer(vocab_size=600, special_tokens=list(specials_first), show_progress=False,
                           initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
  tok.train_from_iterator(_corpus(), tr)
  if specials_last:
    tok.add_special_tokens(list(specials_last))
  return tok


def _llama(prepend_normalizer):
  tok = tokenizers.Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
  if prepend_normalizer:  # Llama-2's hub tokenizer.json
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
  else:  # transformers' current conversion of a SentencePiece model
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
  tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                   decoders.Strip(" ", 1, 0)])
  specials = ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(256)]
  tok.train_from_iterator(_corpus(), trainers.BpeTrainer(vocab_size=800, special_tokens=specials,
                                                         show_progress=False))
  tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                     special_tokens=[("<s>", 1)])
  spec = json.loads(tok.to_str())  # as Llama-2: the byte tokens are model tokens, not added tokens
  spec["added_tokens"] = [a for a in spec["added_tokens"] if a["content"] in ("<unk>", "<s>", "</s>")]
  return tokenizers.Tokenizer.from_str(json.dumps(spec))


def _added(content, i):
  return {"content": content, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False,
          "special": True, "__type": "AddedToken"} if i is None else {
              str(i): {"content": content, "lstrip": False, "normalized": False, "rstrip": False,
                       "single_word": False, "special": True}}


@pytest.fixture(scope="module")
def toks(tmp_path_factory):
  """name -> (config string path, the tokenizers.Tokenizer, expected {eos, pad, bos, unk, size})."""
  root = tmp_path_factory.mktemp("hf_tokenizers")
  out = {}

  t = _byte_level(["<|endoftext|>", "<|padding|>"], [])
  d = root / "pythia"
  d.mkdir()
  t.save(str(d / "tokenizer.json"))
  (d / "tokenizer_config.json").write_text(json.dumps(
      {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
       "pad_token": "<|padding|>", "add_prefix_space": False, "tokenizer_class": "GPTNeoXTokenizer"}))
  out["pythia"] = (str(d), t, dict(eos=0, pad=1, bos=0, unk=0, size=600))

  t = _byte_level([], ["<|endoftext|>"])
  d = root / "gpt2"
  d.mkdir()
  t.save(str(d / "gpt2-tokenizer.json"))
  out["gpt2"] = (str(d / "gpt2-tokenizer.json"), t, dict(eos=600, pad=600, bos=None, unk=None, size=601))

  t = _llama(prepend_normalizer=False)
  d = root / "llama"
  d.mkdir()
  t.save(str(d / "tokenizer.json"))
  (d / "tokenizer_config.json").write_text(json.dumps(
      {"add_bos_token": True, "add_eos_token": False, "bos_token": _added("<s>", None),
       "eos_token": _added("</s>", None), "unk_token": _added("<unk>", None), "pad_token": None,
       "added_tokens_decoder": {**_added("<unk>", 0), **_added("<s>", 1), **_added("</s>", 2)},
       "tokenizer_class": "LlamaTokenizer"}))
  # transformers ignores special_tokens_map.json when tokenizer_config.json has added_tokens_decoder
  (d / "special_tokens_map.json").write_text(json.dumps({"eos_token": "<unk>", "pad_token": "<s>"}))
  out["llama"] = (str(d), t, dict(eos=2, pad=2, bos=1, unk=0, size=800))

  t = _llama(prepend_normalizer=True)
  d = root / "llama_prepend"
  d.mkdir()
  t.save(str(d / "tokenizer.json"))
  out["llama_prepend"] = (str(d / "tokenizer.json"), t, dict(eos=2, pad=2, bos=1, unk=0, size=800))

  t = _byte_level([], ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"])
  d = root / "llama3"
  d.mkdir()
  t.save(str(d / "tokenizer.json"))
  (d / "tokenizer_config.json").write_text(json.dumps(
      {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "tokenizer_class": "PreTrainedTokenizerFast"}))
  out["llama3"] = (str(d), t, dict(eos=602, pad=602, bos=600, unk=None, size=603))
  return out


ALL = ("pythia", "gpt2", "llama", "llama_prepend", "llama3")
BYTE_LEVEL = ("pythia", "gpt2", "llama3")


@pytest.mark.parametrize("name", ALL)
def test_ids_are_the_tokenizers_own_and_dialogues_round_trip(toks, name):
  path, t, _ = toks[name]
  v = V.get_vocabulary(f"hf:{path}")
  py = V.PyHFTokenizerVocabulary(path)
  assert type(v).__name__ == "HFTokenizerVocabulary" and isinstance(v, V.HFTokenizerVocabulary)
  assert v == V.HFTokenizerVocabulary(path) and py == V.PyHFTokenizerVocabulary(path) and hash(v) == hash(v)
  for s in DIALOGUES:
    ids = list(v.encode(s))
    assert ids == t.encode(s, add_special_tokens=False).ids == py.encode(s) == py.encode(s.encode())
    assert v.decode(ids) == py.decode(ids) == s, (name, s)
    assert v.decode(np.asarray(ids, np.int32)) == s
  # the tokenizer's own post-processor would add a BOS; the vocabulary never does
  if name.startswith("llama") and name != "llama3":
    assert t.encode("Hi").ids[0] == 1 and v.encode("Hi")[0] != 1
  assert py.encode_batch(DIALOGUES) == [py.encode(s) for s in DIALOGUES]


@pytest.mark.parametrize("name", ALL)
def test_special_ids_eoc_and_vocab_size(toks, name):
  path, t, want = toks[name]
  v = V.get_vocabulary(f"hf:{path}")
  size = t.get_vocab_size(with_added_tokens=True)
  assert size == want["size"]
  got = dict(eos=V.eos_id(v), pad=V.pad_id(v), bos=v.bos_id, unk=v.unk_id, size=v.py.size)
  assert got == want
  assert V.eoc_id(v) == size == V.vocab_size(v) - 1 and V.vocab_size(v) == v.vocab_size == size + 1
  assert (V.eos_id(f"hf:{path}"), V.pad_id(f"hf:{path}"), V.eoc_id(f"hf:{path}")) == (want["eos"], want["pad"], size)
  assert V.lm_start_id(v) == (want["bos"] if want["bos"] is not None else want["eos"])
  assert V.zero_is_text(v) and V.is_hf(v) and V.is_hf(f"hf:{path}")
  # byte / spm keep seqio's fixed ids
  assert (V.pad_id("byte"), V.eos_id("byte"), V.eoc_id("byte"), V.lm_start_id("byte")) == (0, 1, 259, 0)
  assert (V.pad_id(), V.eos_id()) == (0, 1) and not V.zero_is_text("byte")


@pytest.mark.parametrize("name", ("pythia", "llama"))
def test_special_ids_agree_with_transformers(toks, name):
  transformers = pytest.importorskip("transformers")
  path, _, want = toks[name]
  ht = transformers.PreTrainedTokenizerFast.from_pretrained(path)
  v = V.get_vocabulary(f"hf:{path}")
  assert ht.eos_token_id == V.eos_id(v) == want["eos"]
  assert (ht.pad_token_id if ht.pad_token_id is not None else ht.eos_token_id) == V.pad_id(v)
  assert ht.bos_token_id == v.bos_id
  for s in DIALOGUES:
    assert ht.encode(s, add_special_tokens=False) == list(v.encode(s))


def test_special_tokens_map_overrides_only_without_added_tokens_decoder(toks, tmp_path):
  path, _, _ = toks["llama3"]
  d = tmp_path / "legacy"
  d.mkdir()
  (d / "tokenizer.json").write_text(open(os.path.join(path, "tokenizer.json")).read())
  (d / "tokenizer_config.json").write_text(json.dumps({"eos_token": "<|eot_id|>"}))
  (d / "special_tokens_map.json").write_text(json.dumps({"eos_token": _added("<|end_of_text|>", None),
                                                         "pad_token": "<|begin_of_text|>"}))
  py = V.PyHFTokenizerVocabulary(str(d))
  assert (py.eos_id, py.pad_id) == (601, 600)  # transformers' legacy rule: special_tokens_map.json wins


def test_decode_rules(toks):
  path, _, _ = toks["pythia"]
  v = V.get_vocabulary(f"hf:{path}")
  s = DIALOGUES[0]
  ids = list(v.encode(s))
  eos, pad, eoc = V.eos_id(v), V.pad_id(v), V.eoc_id(v)
  assert v.decode(ids + [eoc]) == s  # the end-of-context token is not text
  assert v.decode(ids[:3] + [eoc] + ids[3:]) == s
  assert v.decode(ids + [eos] + ids) == s  # up to the first EOS (seqio's contract), the EOS not rendered
  assert v.decode(ids + [pad, pad]) == s  # a dedicated pad token is not rendered either
  assert v.decode(ids + [eoc + 5]) == s  # ids beyond the vocabulary (a wider model embedding)
  g = V.get_vocabulary(f"hf:{toks['gpt2'][0]}")
  assert g.decode([0]) == "!" and g.encode("!") == [0]  # id 0 is text in GPT-2-style vocabularies
  # other special tokens are rendered verbatim (skip_special_tokens=False)
  l3 = V.get_vocabulary(f"hf:{toks['llama3'][0]}")
  assert l3.decode([600] + list(l3.encode("Hi"))) == "<|begin_of_text|>Hi"
  assert l3.decode(list(l3.encode("Hi")) + [602, 600]) == "Hi"  # <|eot_id|> is this model's EOS


@pytest.mark.parametrize("name", BYTE_LEVEL)
def test_context_is_a_prefix_of_context_plus_response(toks, name):
  """dialogue.query(q) + dialogue.response(r): the context's ids are a prefix of the whole text's ids (byte-level
  BPE splits ":" from " word" before merging), so the separately tokenised context + response the pipeline feeds
  is exactly the joint tokenisation."""
  path, _, _ = toks[name]
  v = V.get_vocabulary(f"hf:{path}")
  recs = list(lab_corpus.comparisons("validation")[:200]) + list(lab_corpus.pairs("validation")[:50])
  n = 0
  for rec in recs:
    assert rec.context.endswith(dialogue.ASSISTANT)
    c = list(v.encode(rec.context))
    for r in rec.responses:
      assert r.startswith(" ")
      assert c + list(v.encode(r)) == list(v.encode(rec.context + r)), (rec.context, r)
      n += 1
  assert n > 500
  # Cut mid-word, BPE merges across the boundary: the ids differ but still decode to the same text.
  s = DIALOGUES[1]
  diff = 0
  for i in range(len(s) + 1):
    a, b = list(v.encode(s[:i])), list(v.encode(s[i:]))
    assert v.decode(a + b) == s
    diff += a + b != list(v.encode(s))
  assert diff > 0


def test_dummy_prefix_of_sentencepiece_conversions(toks):
  """Documented in hhh/data/vocab/hf.py: SentencePiece conversions add a dummy prefix '▁' to every encoded piece."""
  q, r = dialogue.query("What is 2 + 2?"), dialogue.response("4.")
  for name in BYTE_LEVEL:
    assert not V.get_vocabulary(f"hf:{toks[name][0]}").dummy_prefix
  # Metaspace(prepend_scheme="first"): no "▁" is added before a piece that starts with a space, so the
  # context + response concatenation is exact, but a piece decoded on its own loses a leading space.
  m = V.get_vocabulary(f"hf:{toks['llama'][0]}")
  assert m.dummy_prefix
  assert m.decode(list(m.encode(q)) + list(m.encode(r))) == q + r
  assert list(m.encode(q)) + list(m.encode(r)) == list(m.encode(q + r))
  assert m.decode(m.encode(r)) == r[1:]
  assert m.decode(list(m.encode("a")) + list(m.encode("b"))) == "a b"
  # Prepend("▁") normaliser (Llama-2's hub file): every piece round-trips alone, and a separately encoded
  # response carries one extra "▁": decode(encode(c) + encode(r)) == c + " " + r.
  p = V.get_vocabulary(f"hf:{toks['llama_prepend'][0]}")
  assert p.dummy_prefix
  assert p.decode(p.encode(r)) == r
  assert p.decode(list(p.encode(q)) + list(p.encode(r))) == q + " " + r


@pytest.mark.parametrize("name", ALL)
def test_tf_path_gives_the_python_ids(toks, name):
  path, _, _ = toks[name]
  v = V.get_vocabulary(f"hf:{path}")
  for s in DIALOGUES:
    assert v.encode_tf(tf.constant(s)).numpy().tolist() == list(v.encode(s))
  rag = v.encode_strings_tf(tf.constant(DIALOGUES))
  assert rag.to_list() == [list(v.encode(s)) for s in DIALOGUES]
  assert tok_lib.encode_strings(v, tf.constant(DIALOGUES)).to_list() == rag.to_list()
  assert tok_lib.encode_strings(v, tf.constant([], tf.string)).to_list() == []

  @tf.function
  def graph(s):
    ids = v.encode_tf(s)
    assert ids.shape.as_list() == [None]
    return ids, v.decode_tf(ids)
  ids, text = graph(tf.constant(DIALOGUES[2]))
  assert ids.numpy().tolist() == list(v.encode(DIALOGUES[2])) and text.numpy().decode() == DIALOGUES[2]
  ids = list(v.encode(DIALOGUES[0]))
  two = tf.constant([ids + [V.eoc_id(v)], ids[:4] + [V.eos_id(v)] + ids[4:]], tf.int32)
  out = v.decode_tf(two)
  assert out.shape == (2,) and [x.decode() for x in out.numpy()] == [v.decode(r) for r in two.numpy()]
  # a tf.data map (what the pipeline runs), in parallel
  ds = tf.data.Dataset.from_tensor_slices(DIALOGUES * 5).map(v.encode_tf, num_parallel_calls=4, deterministic=True)
  assert [x.tolist() for x in ds.as_numpy_iterator()] == [list(v.encode(s)) for s in DIALOGUES * 5]


@pytest.mark.parametrize("name", ("pythia", "gpt2"))
def test_comparison_batches_end_with_eoc(toks, name):
  path, _, _ = toks[name]
  vname = f"hf:{path}"
  v = V.get_vocabulary(vname)
  it = pipeline.make_iterator("lab_compare", split="validation", family="comparison", seq_len=128, batch_size=8,
                              vocab=vname, seed=0, shuffle=False, repeat=False, k=4)
  b = next(it)
  it.close()
  recs = lab_corpus.comparisons("validation")[:8]
  for i, rec in enumerate(recs):
    for j in range(4):
      toks_ij = b["tokens"][i, j]
      e, s = b["eoc_index"][i, j], b["response_start"][i, j]
      assert toks_ij[e] == V.eoc_id(v) and (toks_ij[e + 1:] == 0).all()  # padding after eoc stays 0 (masked)
      assert toks_ij[:e + 1].tolist() == list(v.encode(rec.context)) + list(v.encode(rec.responses[j])) + [
          V.eoc_id(v)]
      assert v.decode(toks_ij[s:e].tolist()) == rec.responses[j]
      assert v.decode(toks_ij[:s].tolist()) == rec.context
  assert b["valid"].all() and b["tokens"].max() == V.eoc_id(v) < V.vocab_size(v)
  assert it.stats["truncated_context"] == 0


def test_comparison_batches_with_a_dummy_prefix_vocabulary(toks):
  vname = f"hf:{toks['llama_prepend'][0]}"
  v = V.get_vocabulary(vname)
  it = pipeline.make_iterator("lab_compare_pair", split="validation", family="comparison", seq_len=128,
                              batch_size=4, vocab=vname, seed=0, shuffle=False, repeat=False)
  b = next(it)
  it.close()
  rec = lab_corpus.pairs("validation")[0]
  e, s = b["eoc_index"][0, 0], b["response_start"][0, 0]
  assert b["tokens"][0, 0, e] == V.eoc_id(v)
  assert v.decode(b["tokens"][0, 0, s:e].tolist()) == rec.responses[0]
  assert v.decode(b["tokens"][0, 0, :e].tolist()) == rec.context + " " + rec.responses[0]


@pytest.mark.parametrize("name", ("gpt2", "pythia"))
def test_lm_batches_end_documents_with_the_tokenizers_eos(toks, name):
  """Plain LM: documents packed with the tokenizer's EOS; id 0 (GPT-2's "!") survives packing and carries loss."""
  path, _, want = toks[name]
  vname = f"hf:{path}"
  v = V.get_vocabulary(vname)
  docs = lab_corpus.lm_documents("validation")
  it = pipeline.make_iterator("lab_lm", split="validation", family="lm", seq_len=256, batch_size=8, vocab=vname,
                              seed=0, shuffle=False, repeat=False)
  n_docs = zeros = 0
  for _ in range(3):
    b = next(it)
    for row in range(8):
      seg, tgt, inp = b["decoder_segment_ids"][row], b["decoder_target_tokens"][row], b["decoder_input_tokens"][row]
      w = b["decoder_loss_weights"][row]
      np.testing.assert_array_equal(w, (seg > 0).astype(np.float32))
      assert (tgt[seg == 0] == 0).all() and (inp[seg == 0] == 0).all()
      for k in range(1, seg.max() + 1):
        idx = np.flatnonzero(seg == k)
        t = tgt[idx].tolist()
        assert t[-1] == want["eos"] and t[:-1] == list(v.encode(docs[n_docs]))
        assert inp[idx].tolist() == [V.lm_start_id(v)] + t[:-1]
        assert (b["decoder_positions"][row][idx] == np.arange(len(idx))).all()
        zeros += t[:-1].count(0)
        n_docs += 1
  it.close()
  assert n_docs > 20
  if name == "gpt2":
    assert zeros > 0  # "!" is id 0: seqio's packer alone would have taken it for padding


def test_imitation_batches_with_hf_vocabulary(toks):
  path, _, want = toks["llama"]
  vname = f"hf:{path}"
  v = V.get_vocabulary(vname)
  it = pipeline.make_iterator("lab_imitation", split="validation", family="lm", seq_len=256, batch_size=2,
                              vocab=vname, seed=0, shuffle=False, repeat=False)
  b = next(it)
  it.close()
  first = lab_corpus.imitation_pairs("validation")[0]
  seg = b["decoder_segment_ids"][0]
  idx = np.flatnonzero(seg == 1)
  tgt, w, inp = (b[k][0][idx] for k in ("decoder_target_tokens", "decoder_loss_weights", "decoder_input_tokens"))
  n_ctx = len(v.encode(first[1]))
  assert tgt.tolist() == list(v.encode(first[1])) + list(v.encode(first[2])) + [want["eos"]]
  assert (w[:n_ctx] == 0).all() and (w[n_ctx:] == 1).all() and tgt[-1] == V.eos_id(v) == 2
  assert inp[0] == V.lm_start_id(v) == 1 and inp[1:].tolist() == tgt[:-1].tolist()


def test_shifted_packing_equals_seqio_for_byte():
  """PackedLMFeatureConverter (ids + 1 through seqio's packer) is seqio's DecoderFeatureConverter bit for bit when
  id 0 is padding (byte/spm), so the shift itself changes nothing."""
  import seqio
  from hhh.data import tasks
  ds = seqio.get_mixture_or_task(tasks.ensure_task("lab_lm", "byte")).get_dataset(
      {"targets": 64}, split="validation", shuffle=False, num_epochs=1, use_cached=False).take(200)
  ref = seqio.DecoderFeatureConverter(pack=True, apply_length_check=False)(ds, {"targets": 64})
  new = F.PackedLMFeatureConverter(start_id=0)(ds, {"targets": 64})
  a, b = list(ref.as_numpy_iterator()), list(new.as_numpy_iterator())
  assert len(a) == len(b) > 10
  for x, y in zip(a, b):
    assert sorted(x) == sorted(y)
    for k in x:
      np.testing.assert_array_equal(x[k], y[k], err_msg=k)
      assert x[k].dtype == y[k].dtype


def test_packed_converter_keeps_zero_ids():
  ds = tf.data.Dataset.from_tensor_slices(tf.ragged.constant([[0, 5, 0, 7], [0, 0], [3]], tf.int32)).map(
      lambda t: {"targets": t})
  ex = next(F.PackedLMFeatureConverter(start_id=9)(ds, {"targets": 8}).as_numpy_iterator())
  np.testing.assert_array_equal(ex["decoder_target_tokens"], [0, 5, 0, 7, 0, 0, 3, 0])
  np.testing.assert_array_equal(ex["decoder_segment_ids"], [1, 1, 1, 1, 2, 2, 3, 0])
  np.testing.assert_array_equal(ex["decoder_input_tokens"], [9, 0, 5, 0, 9, 0, 9, 0])
  np.testing.assert_array_equal(ex["decoder_loss_weights"], [1, 1, 1, 1, 1, 1, 1, 0])
  np.testing.assert_array_equal(ex["decoder_positions"], [0, 1, 2, 3, 0, 1, 0, 0])


def test_missing_or_bad_paths_are_clear_errors(tmp_path, toks):
  missing = tmp_path / "nope"
  with pytest.raises(FileNotFoundError, match=str(missing)):
    V.get_vocabulary(f"hf:{missing}")
  empty = tmp_path / "empty"
  empty.mkdir()
  with pytest.raises(FileNotFoundError, match=f"{empty}.*has no tokenizer.json"):
    V.get_vocabulary(f"hf:{empty}")
  with pytest.raises(ValueError, match="expected 'hf:PATH'"):
    V.get_vocabulary("hf:")
  bad = tmp_path / "bad.json"
  bad.write_text("{not json")
  with pytest.raises(ValueError, match="bad.json is not a Hugging Face tokenizer.json"):
    V.get_vocabulary(f"hf:{bad}")
  # a config naming a token the tokenizer does not have
  d = tmp_path / "wrong_eos"
  d.mkdir()
  (d / "tokenizer.json").write_text(open(os.path.join(toks["pythia"][0], "tokenizer.json")).read())
  (d / "tokenizer_config.json").write_text(json.dumps({"eos_token": "</s>"}))
  with pytest.raises(ValueError, match=r"eos_token '</s>'.*not a token"):
    V.get_vocabulary(f"hf:{d}")
  # no config and no known EOS token
  t = tokenizers.Tokenizer(models.BPE())
  t.pre_tokenizer = pre_tokenizers.ByteLevel()
  t.train_from_iterator(["hello world"], trainers.BpeTrainer(vocab_size=300, show_progress=False,
                                                             initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
  t.save(str(tmp_path / "no_eos.json"))
  with pytest.raises(ValueError, match="cannot tell the end-of-sequence token.*no_eos.json"):
    V.get_vocabulary(f"hf:{tmp_path / 'no_eos.json'}")
  with pytest.raises(ValueError, match="'byte', 'spm:PATH' or 'hf:PATH'"):
    V.get_vocabulary("gpt2")


def test_hf_vocabulary_without_tensorflow(toks):
  """The core's TF-free path: with tensorflow/seqio blocked, "hf:PATH" is PyHFTokenizerVocabulary with the same ids,
  and the distillation prompt tokenises through it."""
  path, _, _ = toks["pythia"]
  code = textwrap.dedent(f"""
      import importlib.abc, json, sys
      class _Blocker(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
          if name.split(".")[0] in ("tensorflow", "seqio", "tensorflow_datasets", "tensorflow_text"):
            raise ImportError(name + " is blocked")
          return None
      sys.meta_path.insert(0, _Blocker())
      from hhh.data import vocab as V
      from hhh.objectives import distill
      v = V.get_vocabulary("hf:" + {path!r})
      from hhh import objectives
      oc = objectives.default_config("distill")
      oc.vocab, oc.prompt_max_tokens = "hf:" + {path!r}, 300
      prompt = distill.prompt_tokens(oc)
      print(json.dumps({{"type": type(v).__name__, "ids": v.encode({DIALOGUES[2]!r}), "eos": V.eos_id(v),
                        "pad": V.pad_id(v), "eoc": V.eoc_id(v), "size": V.vocab_size(v), "prompt": prompt.tolist(),
                        "loaded": sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "seqio"))}}))
  """)
  env = {**os.environ, "PYTHONPATH": REPO, "JAX_PLATFORMS": "cpu", "CUDA_VISIBLE_DEVICES": ""}
  p = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert p.returncode == 0, p.stderr[-4000:]
  out = json.loads(p.stdout.strip().splitlines()[-1])
  v = V.get_vocabulary(f"hf:{path}")
  assert out["type"] == "PyHFTokenizerVocabulary" and out["loaded"] == []
  assert out["ids"] == list(v.encode(DIALOGUES[2]))
  assert (out["eos"], out["pad"], out["eoc"], out["size"]) == (0, 1, 600, 601)
  from hhh import objectives
  from hhh.objectives import distill
  oc = objectives.default_config("distill")
  oc.vocab, oc.prompt_max_tokens = f"hf:{path}", 300
  assert out["prompt"] == distill.prompt_tokens(oc).tolist()
  assert 0 < len(out["prompt"]) <= 300


def test_an_open_iterator_does_not_hang_the_interpreter_at_exit(toks):
  """tf.numpy_function in a live tf.data iterator can deadlock interpreter shutdown; pipeline closes them at exit."""
  path, _, _ = toks["gpt2"]
  code = textwrap.dedent(f"""
      from hhh.data import pipeline
      it = pipeline.make_iterator("lab_compare", split="validation", family="comparison", seq_len=128,
                                  batch_size=4, vocab="hf:" + {path!r}, seed=0, shuffle=False, repeat=True, k=4)
      next(it)
      print("ok")
  """)
  env = {**os.environ, "PYTHONPATH": REPO, "JAX_PLATFORMS": "cpu", "CUDA_VISIBLE_DEVICES": ""}
  for _ in range(2):
    p = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert p.returncode == 0 and p.stdout.strip().endswith("ok"), p.stderr[-3000:]
