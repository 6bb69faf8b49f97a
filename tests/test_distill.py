"""Context distillation: reused prompt keys/values, zero KL when the student sees the prompt, the 51-way KL."""

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from hhh import prompts
from hhh.data import teacher_files
from hhh.models.transformer import Transformer, TransformerConfig, init_inputs
from hhh.objectives import distill

V = 260


def ocfg(**kw):
  base = dict(name="distill", mode="online", prompt_file="", prompt_max_tokens=700, vocab="byte",
              student_sees_prompt=False, teacher_dir="", top_k=50)
  return ml_collections.ConfigDict({**base, **kw})


@pytest.fixture(scope="module")
def tiny():
  mc = TransformerConfig(vocab_size=V, d_model=32, n_layers=2, n_heads=2, max_len=1024)
  model = Transformer(mc)
  params = nn_unbox(model.init(jax.random.key(0), init_inputs(mc))["params"])
  # larger-than-init weights so the prompt changes the next-token distributions noticeably
  params = jax.tree.map(lambda p: p * 4.0 if p.ndim >= 2 else p, params)
  return model, params


def nn_unbox(tree):
  return jax.tree.map(lambda p: getattr(p, "value", p), tree, is_leaf=lambda p: hasattr(p, "value"))


def _text(B=3, L=48, seed=0):
  rng = np.random.default_rng(seed)
  tokens = rng.integers(3, 250, (B, L)).astype(np.int32)
  w = np.ones((B, L), np.float32)
  w[:, -1] = 0
  w[2, 20:] = 0
  tokens[2, 21:] = 0  # a short text, right-padded
  return {"tokens": jnp.asarray(tokens), "loss_weights": jnp.asarray(w)}


def test_prompt_file_shape_and_fit():
  text = prompts.read()
  preamble, dialogues = prompts.split(text)
  assert 12 <= len(dialogues) <= 16 and all(d.lstrip("\n").startswith("Human:") for d in dialogues)
  assert "Assistant:" in dialogues[0] and "assistant" in preamble.lower()
  enc = lambda s: list(s.encode("utf-8"))  # noqa: E731
  ids = prompts.fit(text, enc, 1000)
  assert len(ids) <= 1000 and bytes(ids).decode().endswith(prompts.SEPARATOR)
  assert len(prompts.fit(text, enc, 0)) == len(text.encode())
  with pytest.raises(ValueError, match="preamble"):
    prompts.fit(text, enc, 10)


def test_prompt_loadable_from_any_path(tmp_path):
  p = tmp_path / "my_prompt.txt"
  p.write_text("Talk nicely.\n-----\n\nHuman: hi\n\nAssistant: hello\n-----\n")
  ids = distill.prompt_tokens(ocfg(prompt_file=str(p), prompt_max_tokens=0))
  assert bytes((ids - 3).tolist()).decode() == p.read_text()  # byte vocabulary: id = byte + 3


def test_reused_prompt_cache_equals_recomputed_prompt(tiny):
  model, params = tiny
  c = ocfg()
  aux = distill.init_aux(params, model=model, config=c)
  batch = _text()
  reused = distill.teacher_logits(model, aux, batch["tokens"])
  ptok = jnp.asarray(distill.prompt_tokens(c))
  P = ptok.shape[0]
  full = jnp.concatenate([jnp.broadcast_to(ptok, (3, P)), batch["tokens"]], axis=1)
  recomputed = model.apply({"params": params}, full)["logits"][:, P:]
  np.testing.assert_allclose(reused, recomputed, atol=2e-5, rtol=1e-5)
  # and the prompt matters (otherwise the check above could not fail)
  plain = model.apply({"params": params}, batch["tokens"])["logits"]
  assert float(jnp.abs(plain - reused).max()) > 1e-2


def test_kl_is_zero_when_student_sees_prompt(tiny):
  model, params = tiny
  batch = _text()
  aux = distill.init_aux(params, model=model, config=ocfg())
  kl_with, _ = distill.loss_fn(params, batch, model=model, config=ocfg(student_sees_prompt=True), aux=aux)
  kl_without, _ = distill.loss_fn(params, batch, model=model, config=ocfg(), aux=aux)
  assert abs(float(kl_with)) < 1e-6
  assert float(kl_without) > 1e-3


def test_teacher_survives_donated_parameters(tiny):
  model, params = tiny
  params = jax.tree.map(jnp.copy, params)
  aux = jax.jit(lambda p: distill.init_aux(p, model=model, config=ocfg()))(params)
  jax.jit(lambda p: jax.tree.map(lambda x: x * 2, p), donate_argnums=0)(params)
  assert all(not x.is_deleted() for x in jax.tree.leaves(aux))


def test_topk_kl_by_hand():
  # V=4, teacher: top-2 = tokens 0 (0.5) and 2 (0.3), remainder 0.2; student probs [0.4, 0.2, 0.3, 0.1]
  ids = jnp.array([[0, 2]])
  lq = jnp.log(jnp.array([[0.5, 0.3]]))
  rem = jnp.log(jnp.array([0.2]))
  student = jnp.log(jnp.array([[0.4, 0.2, 0.3, 0.1]])) + 1.7  # logits: any shift
  kl = distill.topk_kl(ids, lq, rem, student)
  want = 0.5 * math.log(0.5 / 0.4) + 0.3 * math.log(0.3 / 0.3) + 0.2 * math.log(0.2 / 0.3)
  np.testing.assert_allclose(kl, [want], rtol=1e-5)
  # zero teacher remainder contributes nothing (and no NaN)
  kl0 = distill.topk_kl(ids, jnp.log(jnp.array([[0.6, 0.4]])), jnp.array([-jnp.inf]), student)
  np.testing.assert_allclose(kl0, [0.6 * math.log(0.6 / 0.4) + 0.4 * math.log(0.4 / 0.3)], rtol=1e-5)


def test_51_way_kl_against_numpy():
  rng = np.random.default_rng(1)
  t_logits = rng.normal(size=(2, 5, V)).astype(np.float32) * 3
  s_logits = rng.normal(size=(2, 5, V)).astype(np.float32) * 3
  ids, lps, rem = distill.topk_with_remainder(jnp.asarray(t_logits), 50)
  assert ids.shape == (2, 5, 50)
  np.testing.assert_allclose(np.exp(lps).sum(-1) + np.exp(rem), 1.0, rtol=1e-5)
  kl = np.asarray(distill.topk_kl(ids, lps, rem, jnp.asarray(s_logits)))
  # numpy: 51 buckets (the 50 most likely teacher tokens, then all other tokens)
  def probs(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)
  q, p = probs(t_logits.astype(np.float64)), probs(s_logits.astype(np.float64))
  for b in range(2):
    for t in range(5):
      top = np.argsort(-q[b, t])[:50]
      rest = np.setdiff1d(np.arange(V), top)
      qb = np.append(q[b, t, top], q[b, t, rest].sum())
      pb = np.append(p[b, t, top], p[b, t, rest].sum())
      np.testing.assert_allclose(kl[b, t], (qb * np.log(qb / pb)).sum(), rtol=1e-4, atol=1e-6)
  # identical distributions: zero; and with k = V (no remainder) it is the full KL
  np.testing.assert_allclose(distill.topk_kl(ids, lps, rem, jnp.asarray(t_logits)), 0.0, atol=1e-6)
  ids_v, lps_v, rem_v = distill.topk_with_remainder(jnp.asarray(t_logits), V)
  np.testing.assert_allclose(distill.topk_kl(ids_v, lps_v, rem_v, jnp.asarray(s_logits)),
                             distill.forward_kl(jnp.asarray(t_logits), jnp.asarray(s_logits)), rtol=1e-4, atol=1e-5)


def test_offline_loss_needs_teacher_features(tiny):
  model, params = tiny
  with pytest.raises(ValueError, match="teacher_dir"):
    distill.loss_fn(params, _text(), model=model, config=ocfg(mode="offline"))


def test_stored_teacher_batches_resume_exactly_and_pad_eval(tmp_path):
  n, L, k = 11, 8, 3
  rng = np.random.default_rng(0)
  np.savez(tmp_path / "train.npz", tokens=np.arange(n * L, dtype=np.int32).reshape(n, L),
           loss_weights=np.ones((n, L), np.float32), topk_ids=rng.integers(0, 9, (n, L, k)).astype(np.int32),
           topk_logprobs=np.zeros((n, L, k), np.float32), remainder_logprob=np.zeros((n, L), np.float32))
  np.savez(tmp_path / "validation.npz", **dict(np.load(tmp_path / "train.npz")))
  c = ml_collections.ConfigDict(dict(seed=3, objective=dict(teacher_dir=str(tmp_path)), train=dict(batch_size=4),
                                     data=dict(shuffle=True)))
  it = teacher_files.read_batches(c, split="train", start_batch=0, train=True)
  first = [next(it)["tokens"][:, 0] for _ in range(7)]  # 2 batches per epoch: epochs 0..3
  resumed = teacher_files.read_batches(c, split="train", start_batch=3, train=True)
  for i in range(3, 7):
    np.testing.assert_array_equal(next(resumed)["tokens"][:, 0], first[i])
  assert sorted(np.concatenate(first[:2]) // L) != list(range(8))  # shuffled
  assert not np.array_equal(first[0], first[2])  # a new permutation per epoch
  ev = list(teacher_files.read_batches(c, split="validation", start_batch=0, train=False))
  assert len(ev) == 3 and ev[-1]["loss_weights"][3:].sum() == 0 and ev[-1]["tokens"].shape == (4, L)


def test_stored_teacher_written_then_read_back_exactly_without_padding_rows(tmp_path):
  """The writer keeps rows with loss weight, stops at max_examples, and the reader gives back the same arrays."""
  L, k = 6, 2
  rows = np.arange(5 * L, dtype=np.int32).reshape(5, L)
  weights = np.ones((5, L), np.float32)
  weights[2] = 0  # a padding row of a last batch
  batches = [{"tokens": rows[:3], "loss_weights": weights[:3]}, {"tokens": rows[3:], "loss_weights": weights[3:]}]

  def teacher(tokens):  # a deterministic stand-in for the prompted model: ids and log-probs from the tokens
    t = np.asarray(tokens)
    return (np.stack([t, t + 1], -1), -np.stack([t, t], -1).astype(np.float32) / 100, -t.astype(np.float32))

  done = teacher_files.write_split(str(tmp_path), "validation", batches, teacher)
  assert done["examples"] == 4
  c = ml_collections.ConfigDict(dict(seed=0, objective=dict(teacher_dir=str(tmp_path)), train=dict(batch_size=4),
                                     data=dict(shuffle=False)))
  (got,) = list(teacher_files.read_batches(c, split="validation", start_batch=0, train=False))
  keep = rows[[0, 1, 3, 4]]
  np.testing.assert_array_equal(got["tokens"], keep)
  np.testing.assert_array_equal(got["topk_ids"], np.stack([keep, keep + 1], -1))
  np.testing.assert_array_equal(got["remainder_logprob"], -keep.astype(np.float32))
  assert got["topk_ids"].shape == (4, L, k)
  assert teacher_files.write_split(str(tmp_path), "train", batches, teacher, max_examples=1)["examples"] == 1
