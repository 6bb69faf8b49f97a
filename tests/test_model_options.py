"""Architecture options of TransformerConfig (GPT-NeoX / Llama / GPT-2 layouts): the default parameter tree is the
paper ladder's, each option against a plain jnp reference, rotary layouts and partial rotary, decode == full forward,
tied embeddings, sharded == unsharded, scan == unrolled, parameter counts and FLOPs, bad values."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from hhh import sampling
from hhh.core import flops
from hhh.core import sharding
from hhh.models import config as model_config
from hhh.models.kv_cache import unrolled_params
from hhh.models.layers import rotary
from hhh.models.transformer import Transformer, TransformerConfig, init_inputs, unembed
from hhh.objectives import lm

BASE = dict(vocab_size=64, d_model=32, n_layers=2, n_heads=4, max_len=64)
ARCHS = {
    # GPT-NeoX (Pythia): LayerNorm + biases, parallel residual, exact GELU, rotary on a quarter of each head.
    "neox": dict(n_heads=2, norm="layer", norm_eps=1e-5, attn_bias=True, mlp_bias=True, mlp="gelu",
                 parallel_residual=True, rotary_pct=0.25),
    # Llama: RMSNorm, grouped-query attention (2 query heads per key/value head), SwiGLU.
    "llama": dict(n_kv_heads=2, mlp="swiglu", d_ff=48, norm_eps=1e-5),
    # GPT-2: learned absolute positions, tied embeddings, LayerNorm + biases, tanh GELU.
    "gpt2": dict(positions="learned", tie_embeddings=True, norm="layer", norm_eps=1e-5, attn_bias=True,
                 mlp_bias=True, mlp="gelu_tanh"),
    # GPT-J-style rotary pairs (2i, 2i + 1), on half of each head.
    "interleaved": dict(rotary_layout="interleaved", rotary_pct=0.5),
}


def config(arch=None, **kw):
  return TransformerConfig(**{**BASE, **ARCHS.get(arch, {}), **kw})


def random_params(cfg, seed=0):
  """Parameters with every leaf random (biases and norm scales too, so the reference checks them). One jitted
  program: eager init and per-leaf sampling compiled a kernel per op and shape (~8 s per architecture)."""

  @jax.jit
  def make():
    params = nn.meta.unbox(Transformer(cfg).init(jax.random.key(seed), init_inputs(cfg)))["params"]
    leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
    keys = jax.random.split(jax.random.key(seed + 1), len(leaves))
    out = []
    for (path, x), k in zip(leaves, keys):
      name = jax.tree_util.keystr(path)
      noise = jax.random.normal(k, x.shape, x.dtype)
      out.append(1.0 + 0.2 * noise if "scale" in name else noise if "embedding" in name else 0.2 * noise)
    return jax.tree.unflatten(treedef, out)

  return make()


def tokens(shape, seed=0, vocab=BASE["vocab_size"]):
  return jnp.asarray(np.random.default_rng(seed).integers(1, vocab, shape), jnp.int32)


def param_specs(cfg):
  """{path: (shape, logical axes)} of the model's parameters, from the boxed abstract init."""
  boxed = jax.eval_shape(Transformer(cfg).init, jax.random.key(0), init_inputs(cfg))["params"]
  leaves = jax.tree_util.tree_flatten_with_path(boxed, is_leaf=lambda x: isinstance(x, nn.LogicallyPartitioned))[0]
  return {"/".join(p.key for p in path): (tuple(x.value.shape), tuple(x.names)) for path, x in leaves}


# ----------------------------------------------------------------------------------------------- parameter trees


def test_default_parameter_tree_is_the_paper_ladders():
  """Names, shapes and logical axes of the default architecture, written out by hand: none of the options may change
  them (the paper ladder's checkpoints and shardings)."""
  assert param_specs(TransformerConfig(vocab_size=97, d_model=32, n_layers=2, n_heads=4, max_len=64)) == {
      "embedding": ((97, 32), ("vocab", "embed")),
      "final_norm/scale": ((32,), ("norm",)),
      "layers/attention/query": ((2, 32, 4, 8), ("layers", "embed", "heads", "kv")),
      "layers/attention/key": ((2, 32, 4, 8), ("layers", "embed", "heads", "kv")),
      "layers/attention/value": ((2, 32, 4, 8), ("layers", "embed", "heads", "kv")),
      "layers/attention/out": ((2, 4, 8, 32), ("layers", "heads", "kv", "embed")),
      "layers/attention_norm/scale": ((2, 32), ("layers", "norm")),
      "layers/mlp/wi/kernel": ((2, 32, 128), ("layers", "embed", "mlp")),
      "layers/mlp/wo/kernel": ((2, 128, 32), ("layers", "mlp", "embed")),
      "layers/mlp_norm/scale": ((2, 32), ("layers", "norm")),
      "unembedding/kernel": ((32, 97), ("embed", "vocab")),
  }
  assert TransformerConfig(vocab_size=97, d_model=32, n_layers=2, n_heads=4).non_embedding_params() == (
      2 * (4 * 32 * 32 + 2 * 32 * 128 + 2 * 32) + 32)


def test_option_parameter_trees():
  """The parameters each architecture adds or changes (tools/hf_import.py maps HF tensors onto these)."""
  L = ("layers",)  # noqa: N806
  neox, llama, gpt2 = param_specs(config("neox")), param_specs(config("llama")), param_specs(config("gpt2"))
  for name in ("attention_norm", "mlp_norm"):
    assert neox[f"layers/{name}/bias"] == ((2, 32), L + ("norm",))
  assert neox["final_norm/bias"] == ((32,), ("norm",))
  assert neox["layers/attention/query_bias"] == ((2, 2, 16), L + ("heads", "kv"))
  assert neox["layers/attention/key_bias"] == neox["layers/attention/value_bias"] == ((2, 2, 16), L + ("heads", "kv"))
  assert neox["layers/attention/out_bias"] == ((2, 32), L + ("embed",))
  assert neox["layers/mlp/wi/bias"] == ((2, 128), L + ("mlp",))
  assert neox["layers/mlp/wo/bias"] == ((2, 32), L + ("embed",))
  assert "unembedding/kernel" in neox and "position_embedding" not in neox

  assert llama["layers/attention/query"] == ((2, 32, 4, 8), L + ("embed", "heads", "kv"))
  assert llama["layers/attention/key"] == llama["layers/attention/value"] == ((2, 32, 2, 8),
                                                                               L + ("embed", "heads", "kv"))
  assert llama["layers/mlp/wg/kernel"] == llama["layers/mlp/wi/kernel"] == ((2, 32, 48), L + ("embed", "mlp"))
  assert llama["layers/mlp/wo/kernel"] == ((2, 48, 32), L + ("mlp", "embed"))
  assert not any(k.endswith("bias") for k in llama)

  assert gpt2["position_embedding"] == ((64, 32), ("position", "embed"))
  assert "unembedding/kernel" not in gpt2
  assert "position" in dict(sharding.DEFAULT_RULES)


@pytest.mark.parametrize("arch", [None, *ARCHS])
def test_analytic_non_embedding_count_matches_the_parameters(arch):
  cfg = config(arch, score_head=True)
  specs = param_specs(cfg)
  n = sum(int(np.prod(s)) for k, (s, _) in specs.items()
          if k.split("/")[0] not in ("embedding", "position_embedding", "unembedding", "score_head"))
  assert n == cfg.non_embedding_params()


def test_flops_count_grouped_query_attention_and_swiglu():
  """6 N + 6 V d + 12 L T (heads * head_dim) with N counted by hand for the Llama-like config: k/v projections at
  2 of 4 heads, three MLP matrices."""
  cfg = config("llama")
  per_layer = 32 * 32 * 2 + 32 * 16 * 2 + 3 * 32 * 48 + 2 * 32  # query+out, key+value, wg+wi+wo, two norms
  assert cfg.non_embedding_params() == 2 * per_layer + 32 == 15520
  assert flops.train_flops_per_token(cfg.non_embedding_params(), 2, 32, 16, 64, attn_width=32) == (
      6 * 15520 + 6 * 64 * 32 + 12 * 2 * 16 * 32)


# ----------------------------------------------------------------------------------------------- plain reference


def ref_norm(x, p, cfg):
  if cfg.norm == "layer":
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / jnp.sqrt(var + cfg.norm_eps) * p["scale"] + p["bias"]
  return x / jnp.sqrt((x ** 2).mean(-1, keepdims=True) + cfg.norm_eps) * p["scale"]


def ref_rotary(x, pos, cfg):
  """HF style: x [T, H, D]; cos/sin of the duplicated frequencies, rotate_half (GPT-NeoX/Llama) or rotate_every_two
  (GPT-J) on the first rotary dims, the rest concatenated back."""
  r = int(cfg.d_head * cfg.rotary_pct)
  inv_freq = 1.0 / cfg.rope_theta ** (np.arange(0, r, 2) / r)
  freqs = pos[:, None].astype(jnp.float32) * inv_freq  # [T, r/2]
  xr, xp = x[..., :r], x[..., r:]
  if cfg.rotary_layout == "half":
    emb = jnp.concatenate([freqs, freqs], -1)[:, None]
    rotated = jnp.concatenate([-xr[..., r // 2:], xr[..., :r // 2]], -1)
  else:
    emb = jnp.repeat(freqs, 2, -1)[:, None]
    rotated = jnp.stack([-xr[..., 1::2], xr[..., 0::2]], -1).reshape(xr.shape)
  return jnp.concatenate([xr * jnp.cos(emb) + rotated * jnp.sin(emb), xp], -1)


def ref_attention(x, p, cfg, pos):
  q = jnp.einsum("td,dhk->thk", x, p["query"])
  k = jnp.einsum("td,dhk->thk", x, p["key"])
  v = jnp.einsum("td,dhk->thk", x, p["value"])
  if cfg.attn_bias:
    q, k, v = q + p["query_bias"], k + p["key_bias"], v + p["value_bias"]
  if cfg.positions == "rotary":
    q, k = ref_rotary(q, pos, cfg), ref_rotary(k, pos, cfg)
  kv_of = np.arange(cfg.n_heads) // (cfg.n_heads // cfg.n_kv_heads)  # query head h reads kv head h // groups
  k, v = k[:, kv_of], v[:, kv_of]
  t = x.shape[0]
  s = jnp.einsum("qhk,shk->hqs", q, k) / np.sqrt(cfg.d_head)
  s = jnp.where(np.tril(np.ones((t, t), bool)), s, -jnp.inf)
  o = jnp.einsum("hqs,shk->qhk", jax.nn.softmax(s, -1), v)
  o = jnp.einsum("thk,hkd->td", o, p["out"])
  return o + p["out_bias"] if cfg.attn_bias else o


def ref_mlp(x, p, cfg):
  def dense(name, h):
    return h @ p[name]["kernel"] + (p[name]["bias"] if cfg.mlp_bias else 0.0)
  h = dense("wi", x)
  if cfg.mlp == "swiglu":
    g = dense("wg", x)
    h = g / (1.0 + jnp.exp(-g)) * h
  elif cfg.mlp == "gelu":
    h = 0.5 * h * (1.0 + jax.scipy.special.erf(h / np.sqrt(2.0)))
  else:
    h = 0.5 * h * (1.0 + jnp.tanh(np.sqrt(2.0 / np.pi) * (h + 0.044715 * h ** 3)))
  return dense("wo", h)


def ref_logits(params, toks, cfg):
  """Logits [T, V] of one sequence, written from the architecture's definition (scanned parameters)."""
  pos = np.arange(toks.shape[0])
  x = params["embedding"][toks]
  if cfg.positions == "learned":
    x = x + params["position_embedding"][pos]
  for i in range(cfg.n_layers):
    p = jax.tree.map(lambda a, i=i: a[i], params["layers"])
    a = ref_attention(ref_norm(x, p["attention_norm"], cfg), p["attention"], cfg, pos)
    if cfg.parallel_residual:
      x = x + a + ref_mlp(ref_norm(x, p["mlp_norm"], cfg), p["mlp"], cfg)
    else:
      x = x + a
      x = x + ref_mlp(ref_norm(x, p["mlp_norm"], cfg), p["mlp"], cfg)
  x = ref_norm(x, params["final_norm"], cfg)
  return x @ (params["embedding"].T if cfg.tie_embeddings else params["unembedding"]["kernel"])


@pytest.mark.parametrize("arch", list(ARCHS))
def test_logits_equal_the_plain_reference(arch):
  cfg = config(arch)
  params = random_params(cfg)
  t = tokens((2, 12))
  got = Transformer(cfg).apply({"params": params}, t)["logits"]
  for b in range(2):
    want = ref_logits(params, t[b], cfg)
    assert float(jnp.abs(want).max()) > 1.0  # not vanishingly small: the tolerance below is meaningful
    np.testing.assert_allclose(got[b], want, atol=1e-5, rtol=1e-5)


def test_the_reference_sees_every_option():
  """The reference is not trivially satisfied: flipping each option changes the module's logits."""
  t = tokens((1, 12))
  base = config("neox")
  params = random_params(base)
  ref = Transformer(base).apply({"params": params}, t)["logits"]
  for change in (dict(parallel_residual=False), dict(mlp="gelu_tanh"), dict(rotary_pct=0.5),
                 dict(rotary_layout="interleaved")):
    other = Transformer(config("neox", **change)).apply({"params": params}, t)["logits"]
    assert not np.allclose(other, ref, atol=1e-4), change


# ----------------------------------------------------------------------------------------------- rotary


@pytest.mark.parametrize("pct", [1.0, 0.5])
def test_interleaved_rotary_is_half_rotary_on_permuted_head_dims(pct):
  """Pairs (2i, 2i + 1) are pairs (i, i + r/2) once the rotary dims are reordered [0, 2, .., r-2, 1, 3, .., r-1]:
  permuting the query/key kernels' head dims turns an interleaved model into the half-layout one (q.k is unchanged
  by a common permutation of q and k), as HF's conversion of Meta's Llama checkpoints does."""
  inter = config(rotary_layout="interleaved", rotary_pct=pct)
  half = config(rotary_layout="half", rotary_pct=pct)
  r = inter.rotary_dims
  perm = np.concatenate([np.arange(0, r, 2), np.arange(1, r, 2), np.arange(r, inter.d_head)])
  params = random_params(inter)
  attn = params["layers"]["attention"]
  permuted = {**params, "layers": {**params["layers"], "attention": {
      **attn, "query": attn["query"][..., perm], "key": attn["key"][..., perm]}}}
  t = tokens((2, 12))
  a = Transformer(inter).apply({"params": params}, t)["logits"]
  b = Transformer(half).apply({"params": permuted}, t)["logits"]
  np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)
  # ... and the layouts differ on the same kernels.
  assert not np.allclose(a, Transformer(half).apply({"params": params}, t)["logits"], atol=1e-3)


@pytest.mark.parametrize("layout", ["half", "interleaved"])
def test_partial_rotary_leaves_the_pass_through_dims_untouched(layout):
  x = jax.random.normal(jax.random.key(0), (2, 6, 3, 16))
  pos = jnp.broadcast_to(jnp.arange(6) + 3, (2, 6))
  y = rotary(x, pos, 10000.0, pct=0.25, layout=layout)
  np.testing.assert_array_equal(y[..., 4:], x[..., 4:])
  # The first 4 dims are a full rotary of 4 dims (frequencies over the rotary dims, as HF GPT-NeoX).
  np.testing.assert_allclose(y[..., :4], rotary(x[..., :4], pos, 10000.0, layout=layout), atol=1e-6)
  assert not np.allclose(y[..., :4], x[..., :4], atol=1e-3)
  np.testing.assert_allclose(jnp.linalg.norm(y, axis=-1), jnp.linalg.norm(x, axis=-1), rtol=1e-5)


# ----------------------------------------------------------------------------------------------- decode and caches


def _flat(cfg):
  return Transformer(TransformerConfig(**{**vars(cfg), "scan_layers": False}))


@pytest.mark.parametrize("arch,with_prefix", [("llama", False), ("llama", True), ("gpt2", False), ("gpt2", True)])
def test_decode_logits_equal_the_full_forward_at_every_step(arch, with_prefix):
  """Right-padded prompts, prefill, then single-token steps and a 2-token step: each row's logits equal a forward
  pass over the (prefix +) row tokens with no cache at all; caches hold n_kv_heads heads."""
  cfg = config(arch, max_len=64)
  params = random_params(cfg)
  model, flat, fparams = Transformer(cfg), _flat(cfg), unrolled_params(params, cfg.n_layers)
  rng = np.random.default_rng(0)
  prefix_tokens = list(rng.integers(1, 64, 7)) if with_prefix else []
  prefix = None
  if with_prefix:
    stacked = model.apply({"params": params}, jnp.asarray([prefix_tokens]), return_cache=True,
                          return_logits=False)["cache"]
    assert stacked["k"].shape == (cfg.n_layers, 1, 7, cfg.n_kv_heads, cfg.d_head)
    prefix = jax.tree.map(lambda c: c[:, 0], stacked)
  rows = [list(rng.integers(1, 64, n)) for n in (5, 9, 3)]
  toks = np.zeros((3, 9), np.int32)
  for i, r in enumerate(rows):
    toks[i, :len(r)] = r
  lengths = jnp.asarray([len(r) for r in rows], jnp.int32)
  cache, logits = jax.jit(lambda p, t, n, c: sampling.prefill(flat, p, t, n, 20, c))(fparams, jnp.asarray(toks),
                                                                                     lengths, prefix)
  assert cache["k"][0].shape == cache["v"][1].shape == (3, cfg.n_kv_heads, 20, cfg.d_head)
  step = jax.jit(lambda p, c, t, pc: sampling.decode_step(flat, p, c, t, pc))
  forward = jax.jit(lambda p, t: model.apply({"params": p}, t)["logits"][0])

  def full(seq):  # no cache and no prefix cache: the prefix tokens are part of the sequence
    seq = prefix_tokens + list(seq)
    return forward(params, jnp.asarray([seq + [0] * (40 - len(seq))], jnp.int32))[len(prefix_tokens):len(seq)]

  for _ in range(4):
    for i in range(3):
      np.testing.assert_allclose(logits[i], full(rows[i])[-1], atol=1e-5, rtol=1e-5)
    nxt = np.asarray(jnp.argmax(logits, -1), np.int32)
    for i in range(3):
      rows[i].append(int(nxt[i]))
    out, cache = step(fparams, cache, jnp.asarray(nxt)[:, None], prefix)
    logits = out[:, 0]
  two = np.asarray([[5, 6], [7, 8], [9, 10]], np.int32)
  out, cache = step(fparams, cache, jnp.asarray(two), prefix)
  for i in range(3):
    np.testing.assert_allclose(out[i], full(rows[i] + list(two[i]))[-2:], atol=1e-5, rtol=1e-5)
  np.testing.assert_array_equal(cache["index"], lengths + 6)
  assert cache["k"][0].shape == (3, cfg.n_kv_heads, 20, cfg.d_head)


# ----------------------------------------------------------------------------------------------- tied embeddings


def test_tied_embeddings_have_no_unembedding_and_unembed_equals_the_module():
  cfg = config("gpt2")
  params = random_params(cfg)
  assert "unembedding" not in params
  t = tokens((2, 12))
  out = Transformer(cfg).apply({"params": params}, t, return_hidden=True)
  np.testing.assert_array_equal(unembed(params, out["hidden"], cfg), out["logits"])
  np.testing.assert_allclose(out["logits"], out["hidden"] @ params["embedding"].T, atol=1e-5, rtol=1e-5)


def test_chunked_lm_loss_with_tied_embeddings():
  """model.logits_chunk: the LM loss by chunks of positions equals the whole-sequence loss, and its gradient reaches
  the embedding through the vocabulary head."""
  batch = {"decoder_input_tokens": tokens((2, 12)), "decoder_target_tokens": tokens((2, 12), seed=1),
           "decoder_positions": jnp.broadcast_to(jnp.arange(12), (2, 12)),
           "decoder_segment_ids": jnp.ones((2, 12), jnp.int32), "decoder_loss_weights": jnp.ones((2, 12))}
  whole, chunked = config("gpt2"), config("gpt2", logits_chunk=5)
  params = random_params(whole)

  def loss(cfg, p):
    return lm.loss_fn(p, batch, model=Transformer(cfg), config=None)[0]

  ref = loss(whole, params)
  np.testing.assert_allclose(loss(chunked, params), ref, rtol=1e-6)
  g_whole, g_chunked = jax.grad(lambda p: loss(whole, p))(params), jax.grad(lambda p: loss(chunked, p))(params)
  for a, b in zip(jax.tree.leaves(g_whole), jax.tree.leaves(g_chunked)):
    np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-4)
  # The head's part of the embedding gradient: rows of tokens that are never inputs still get one.
  unused = np.setdiff1d(np.arange(64), np.asarray(batch["decoder_input_tokens"]))
  assert float(jnp.abs(g_chunked["embedding"][unused]).sum()) > 0


# ----------------------------------------------------------------------------------------------- sharding, scan


def test_sharded_equals_unsharded_for_the_llama_like_config():
  """(data=2, fsdp=2, tensor=2) mesh of the 8 fake CPU devices: the parameters on their logical shardings (the
  key/value kernels' 2 heads over tensor), the forward and a prefill + decode step equal the single-device ones."""
  cfg = config("llama")
  flat = _flat(cfg)
  params = random_params(cfg)
  t = tokens((4, 12))
  want = jax.jit(lambda p, x: Transformer(cfg).apply({"params": p}, x)["logits"])(params, t)  # one device
  fparams = unrolled_params(params, cfg.n_layers)
  lengths = jnp.asarray([12, 7, 3, 9], jnp.int32)
  want_cache, want_prefill = jax.jit(lambda p, x, n: sampling.prefill(flat, p, x, n, 16))(fparams, t, lengths)
  want_step = jax.jit(lambda p, c, x: sampling.decode_step(flat, p, c, x)[0])(fparams, want_cache, t[:, :1])

  mesh = sharding.make_mesh(ml_collections.ConfigDict(dict(shape=dict(data=2, fsdp=2, tensor=2), slices=1)))
  rules = sharding.DEFAULT_RULES
  model = Transformer(cfg)
  with sharding.activate(mesh, rules):
    abstract = jax.eval_shape(model.init, jax.random.key(0), init_inputs(cfg))["params"]
    shardings = sharding.logical_to_shardings(abstract, mesh, rules)
    sharded = jax.device_put(params, shardings)
    assert tuple(sharded["layers"]["attention"]["key"].sharding.spec) == (None, "fsdp", "tensor", None)
    t_sh = jax.device_put(t, sharding.batch_sharding(mesh, 2))
    got = jax.jit(lambda p, x: model.apply({"params": p}, x)["logits"])(sharded, t_sh)
    fsharded = unrolled_params(sharded, cfg.n_layers)
    cache, got_prefill = jax.jit(lambda p, x, n: sampling.prefill(flat, p, x, n, 16))(fsharded, t_sh, lengths)
    assert cache["k"][0].shape == (4, 2, 16, 8)
    got_step = jax.jit(lambda p, c, x: sampling.decode_step(flat, p, c, x)[0])(fsharded, cache, t_sh[:, :1])
  np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)
  np.testing.assert_allclose(got_prefill, want_prefill, atol=1e-5, rtol=1e-5)
  np.testing.assert_allclose(got_step, want_step, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("arch", list(ARCHS))
def test_scan_equals_unrolled_layers(arch):
  cfg = config(arch)
  params = random_params(cfg)
  t = tokens((2, 12))
  scanned = Transformer(cfg).apply({"params": params}, t)["logits"]
  unrolled = _flat(cfg).apply({"params": unrolled_params(params, cfg.n_layers)}, t)["logits"]
  np.testing.assert_allclose(scanned, unrolled, atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------------------------------------- bad values


@pytest.mark.parametrize("kw,match", [
    (dict(norm="batch"), r"unknown norm='batch'; choose one of \['rms', 'layer'\]"),
    (dict(mlp="relu"), r"unknown mlp='relu'"),
    (dict(rotary_layout="gptj"), r"unknown rotary_layout='gptj'"),
    (dict(positions="alibi"), r"unknown positions='alibi'; choose one of \['rotary', 'learned'\]"),
    (dict(n_kv_heads=3), r"n_kv_heads=3 must divide n_heads=4"),
    (dict(n_kv_heads=8), r"n_kv_heads=8 must divide n_heads=4"),
    (dict(n_kv_heads=-2), r"n_kv_heads=-2 must divide"),
    (dict(rotary_pct=0.375), r"int\(d_head \* rotary_pct\) = int\(8 \* 0.375\) = 3"),  # odd
    (dict(rotary_pct=0.1), r"rotary_pct\) = int\(8 \* 0.1\) = 0"),  # no rotary dims at all
    (dict(rotary_pct=0.0), r"rotary_pct must be in \(0, 1\]"),
    (dict(rotary_pct=1.5), r"rotary_pct must be in \(0, 1\]"),
])
def test_bad_option_values_name_the_field(kw, match):
  with pytest.raises(ValueError, match=match):
    config(**kw)


def test_option_defaults_and_resolution():
  cfg = config()
  assert (cfg.norm, cfg.mlp, cfg.rotary_layout, cfg.positions, cfg.rotary_pct) == ("rms", "gelu_tanh", "half",
                                                                                    "rotary", 1.0)
  assert not (cfg.attn_bias or cfg.mlp_bias or cfg.parallel_residual or cfg.tie_embeddings)
  assert cfg.n_kv_heads == 4 and cfg.rotary_dims == 8  # 0 means n_heads
  # Learned positions need no rotary dims (an odd head dimension is fine).
  assert config(positions="learned", d_model=36, n_heads=4).d_head == 9
  assert model_config.POSITIONS == ("rotary", "learned")
