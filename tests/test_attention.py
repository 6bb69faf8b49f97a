"""hhh.models.attention: every implementation equals the dense reference (values and gradients) with packed
segments and a shared prefix; `auto` picks per backend; blockwise memory is not quadratic; the TPU step uses splash.

Splash (TPU) and the Pallas GPU kernel run in Pallas interpret mode on CPU (slow: shapes are tiny). cuDNN needs a GPU.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from hhh.core import sharding
from hhh.models import attention as A
from hhh.models.transformer import Transformer, TransformerConfig, init_inputs


def inputs(b, t, h, d, *, prefix=0, packed=True, seed=0):
  rng = np.random.default_rng(seed)
  q, k, v, w = (jnp.asarray(rng.normal(size=(b, t, h, d)), jnp.float32) for _ in range(4))
  pk = pv = None
  if prefix:
    pk, pv = (jnp.asarray(rng.normal(size=(prefix, h, d)), jnp.float32) for _ in range(2))
  seg = None
  if packed:  # sorted ids: contiguous documents as packing makes them, with a 0 (padding) segment in some rows
    seg = jnp.asarray(np.sort(rng.integers(0, 4, size=(b, t)), axis=1), jnp.int32)
  return q, k, v, w, seg, pk, pv


def value_and_grads(fn, q, k, v, w, seg, pk, pv):
  """Output and gradients of sum(out * w) with respect to q, k, v (and the prefix keys/values)."""
  def loss(q, k, v, pk, pv):
    return (fn(q, k, v, segment_ids=seg, prefix_k=pk, prefix_v=pv) * w).sum()
  argnums = (0, 1, 2, 3, 4) if pk is not None else (0, 1, 2)
  out = jax.jit(lambda q, k, v, pk, pv: fn(q, k, v, segment_ids=seg, prefix_k=pk, prefix_v=pv))(q, k, v, pk, pv)
  return out, jax.jit(jax.grad(loss, argnums=argnums))(q, k, v, pk, pv)


def assert_same(a, b, atol=2e-5):
  (oa, ga), (ob, gb) = a, b
  np.testing.assert_allclose(oa, ob, atol=atol, rtol=1e-5)
  assert len(ga) == len(gb)
  for x, y in zip(ga, gb):
    np.testing.assert_allclose(x, y, atol=atol, rtol=1e-5)


# ----------------------------------------------------------------------------------------------- reference


def test_reference_mask_is_causal_segment_local_and_sees_the_prefix():
  q, k, v, _, _, pk, pv = inputs(1, 5, 1, 4, prefix=2, packed=False)
  seg = jnp.array([[1, 1, 2, 2, 0]])
  m = np.asarray(A.attention_mask(seg, 2))[0, 0]
  assert m[:, :2].all()
  np.testing.assert_array_equal(m[:, 2:], [[1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 1, 1, 0],
                                           [0, 0, 0, 0, 1]])
  # segment_ids=None means one document per row: the same as all-equal ids.
  np.testing.assert_allclose(A.xla_attention(q, k, v, prefix_k=pk, prefix_v=pv),
                             A.xla_attention(q, k, v, segment_ids=jnp.ones((1, 5), jnp.int32), prefix_k=pk,
                                             prefix_v=pv), atol=1e-6)


# ----------------------------------------------------------------------------------------------- blockwise


@pytest.mark.parametrize("t,prefix,packed,block_q,block_kv", [
    (37, 0, True, 8, 16),   # lengths not multiples of the blocks, several blocks, packed segments
    (37, 5, True, 16, 8),   # packed segments and a shared prefix (prefix visible across segments)
    (64, 0, False, 16, 16),  # one document per row, exact multiples
    (50, 13, False, 512, 512),  # blocks larger than the sequence shrink to it
    (24, 40, True, 8, 8),   # a prefix longer than the row
])
def test_blockwise_equals_reference(t, prefix, packed, block_q, block_kv):
  x = inputs(2, t, 3, 8, prefix=prefix, packed=packed)
  ref = value_and_grads(A.xla_attention, *x)
  blk = value_and_grads(lambda *a, **kw: A.blockwise_attention(*a, **kw, block_q=block_q, block_kv=block_kv), *x)
  assert_same(blk, ref)


def test_blockwise_bfloat16_is_close_to_reference():
  q, k, v, w, seg, pk, pv = inputs(2, 40, 2, 16, prefix=6)
  bf = [x.astype(jnp.bfloat16) for x in (q, k, v, pk, pv)]
  ref = A.xla_attention(bf[0], bf[1], bf[2], segment_ids=seg, prefix_k=bf[3], prefix_v=bf[4])
  out = A.blockwise_attention(bf[0], bf[1], bf[2], segment_ids=seg, prefix_k=bf[3], prefix_v=bf[4], block_q=16,
                              block_kv=16)
  assert out.dtype == jnp.bfloat16
  np.testing.assert_allclose(out.astype(jnp.float32), ref.astype(jnp.float32), atol=3e-2)


def test_blockwise_memory_is_not_quadratic_forward_and_backward():
  b, t, h, d = 1, 2048, 2, 16
  x = jax.ShapeDtypeStruct((b, t, h, d), jnp.float32)
  seg = jax.ShapeDtypeStruct((b, t), jnp.int32)

  def temp_bytes(fn):
    g = jax.jit(jax.grad(lambda q, k, v, s: fn(q, k, v, segment_ids=s).sum(), argnums=(0, 1, 2)))
    return g.lower(x, x, x, seg).compile().memory_analysis().temp_size_in_bytes

  scores = b * h * t * t * 4
  assert temp_bytes(A.xla_attention) > scores  # the reference holds the dense scores
  assert temp_bytes(lambda *a, **kw: A.blockwise_attention(*a, **kw, block_q=128, block_kv=128)) < scores / 8


# ----------------------------------------------------------------------------------------------- kernels (interpret)


@pytest.mark.parametrize("prefix,packed", [(0, True), (40, False)])
def test_splash_equals_reference_in_interpret_mode(prefix, packed):
  x = inputs(2, 200, 2, 64, prefix=prefix, packed=packed)  # 200: padded to the kernel's 128 granularity
  ref = value_and_grads(A.xla_attention, *x)
  spl = value_and_grads(lambda *a, **kw: A.attend(*a, **kw, impl="splash", interpret=True), *x)
  assert_same(spl, ref)


def test_splash_runs_under_shard_map_on_a_mesh():
  mesh = jax.sharding.Mesh(np.array(jax.devices()[:8]).reshape(1, 2, 2, 2), sharding.MESH_AXES)
  q, k, v, w, seg, _, _ = inputs(4, 128, 2, 32)
  x_sh = NamedSharding(mesh, P(sharding.BATCH_AXES, None, "tensor", None))
  s_sh = NamedSharding(mesh, P(sharding.BATCH_AXES, None))
  q, k, v, w = (jax.device_put(a, x_sh) for a in (q, k, v, w))
  seg = jax.device_put(seg, s_sh)
  with sharding.activate(mesh, sharding.DEFAULT_RULES):
    fn = jax.jit(jax.value_and_grad(
        lambda q, k, v: (A.attend(q, k, v, segment_ids=seg, impl="splash", interpret=True) * w).sum(),
        argnums=(0, 1, 2)))
    text = fn.lower(q, k, v).as_text()
    got = fn(q, k, v)
  assert "shard_map" in text or "manual" in text  # the kernel runs per device
  want = jax.value_and_grad(lambda q, k, v: (A.xla_attention(q, k, v, segment_ids=seg) * w).sum(),
                            argnums=(0, 1, 2))(q, k, v)
  np.testing.assert_allclose(got[0], want[0], rtol=1e-5)
  for a, b in zip(got[1], want[1]):
    np.testing.assert_allclose(a, b, atol=2e-5)


def test_gpu_packed_path_equals_reference_in_interpret_mode():
  """The Pallas GPU `mha` kernel with segment ids (what `cudnn` runs for packed rows), interpreted on CPU."""
  x = inputs(2, 100, 2, 16, packed=True)
  ref = value_and_grads(A.xla_attention, *x)
  got = value_and_grads(lambda *a, **kw: A.attend(*a, **kw, impl="cudnn", interpret=True), *x)
  assert_same(got, ref)


@pytest.mark.skipif(jax.default_backend() != "gpu", reason="cuDNN flash attention needs a GPU")
@pytest.mark.parametrize("prefix,packed", [(0, False), (24, False), (0, True)])
def test_cudnn_equals_reference_on_gpu(prefix, packed):
  q, k, v, w, seg, pk, pv = inputs(2, 256, 4, 64, prefix=prefix, packed=packed)
  cast = lambda a: None if a is None else a.astype(jnp.bfloat16)  # noqa: E731  (cuDNN takes bf16/fp16)
  x = (cast(q), cast(k), cast(v), cast(w), seg, cast(pk), cast(pv))
  ref = value_and_grads(A.xla_attention, *x)
  got = value_and_grads(lambda *a, **kw: A.attend(*a, **kw, impl="cudnn"), *x)
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(ref)):
    np.testing.assert_allclose(a.astype(jnp.float32), b.astype(jnp.float32), atol=5e-2)


# ----------------------------------------------------------------------------------------------- auto / fallbacks


def test_auto_picks_per_backend_and_falls_back_with_a_reason():
  r = A.resolve
  assert r("auto", q_len=8192, platform="tpu") == ("splash", "")
  assert r("auto", q_len=8192, platform="gpu") == ("cudnn", "")
  assert r("auto", q_len=128, platform="cpu") == ("xla", "")  # short: dense is as fast on CPU
  assert r("auto", q_len=512, platform="cpu") == ("blockwise", "")
  assert r("auto", q_len=64, prefix_len=512, platform="cpu") == ("blockwise", "")  # prompted evaluation rows
  for impl in ("splash", "cudnn"):
    assert r(impl, q_len=256, prefix_len=0, packed=True) == (impl, "")
    assert r(impl, q_len=256, prefix_len=64, packed=False) == (impl, "")
    name, why = r(impl, q_len=256, prefix_len=64, packed=True)
    assert name == "blockwise" and "prefix" in why
  assert r("xla", q_len=8192, platform="tpu") == ("xla", "")
  with pytest.raises(ValueError, match="unknown attention implementation 'flash'"):
    r("flash", q_len=8)
  with pytest.raises(ValueError, match="unknown attention implementation"):
    TransformerConfig(vocab_size=11, d_model=16, n_layers=1, n_heads=2, attention="flash")


def test_current_platform_follows_the_mesh():
  assert A.current_platform() == jax.default_backend()
  mesh = jax.sharding.Mesh(np.array(jax.devices()[:2]).reshape(1, 2, 1, 1), sharding.MESH_AXES)
  with jax.set_mesh(mesh):
    assert A.current_platform() == mesh.devices.flat[0].platform


# ----------------------------------------------------------------------------------------------- in the model


def make(attention, **kw):
  cfg = TransformerConfig(vocab_size=97, d_model=32, n_layers=2, n_heads=4, max_len=256, attention=attention,
                          attention_block=16, **kw)
  model = Transformer(cfg)
  return model, nn.meta.unbox(model.init(jax.random.key(1), init_inputs(cfg)))["params"]


def test_model_with_blockwise_attention_equals_xla_with_packing_and_prefix_cache():
  rng = np.random.default_rng(0)
  tok = jnp.asarray(rng.integers(1, 97, (2, 40)), jnp.int32)
  seg = jnp.asarray(np.sort(rng.integers(1, 4, (2, 40)), 1), jnp.int32)
  prefix = jnp.asarray(rng.integers(1, 97, (1, 21)), jnp.int32)
  outs = {}
  for impl in ("xla", "blockwise"):
    model, params = make(impl)
    cache = jax.jit(lambda p, model=model: jax.tree.map(lambda c: c[:, 0], model.apply(
        {"params": p}, prefix, return_logits=False, return_cache=True)["cache"]))(params)

    def loss(p, cache, model=model):
      a = model.apply({"params": p}, tok, segment_ids=seg)["logits"]
      b = model.apply({"params": p}, tok, prefix_cache=cache)["logits"]
      return jnp.mean(a ** 2) + jnp.mean(jnp.sin(b))

    outs[impl] = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(params, cache)
  np.testing.assert_allclose(outs["blockwise"][0], outs["xla"][0], rtol=1e-5)
  for a, b in zip(jax.tree.leaves(outs["blockwise"][1]), jax.tree.leaves(outs["xla"][1])):
    np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-6)


# ----------------------------------------------------------------------------------------------- TPU step (AOT)


@pytest.mark.tpu
def test_aot_tpu_train_step_runs_the_splash_kernel():
  """The real train step compiled for a TPU slice with attention=auto holds the splash kernels (forward, dq, dkv)."""
  from hhh import config as hc, train  # pylint: disable=g-import-not-at-top
  from hhh.train import aot  # pylint: disable=g-import-not-at-top
  reason = aot.libtpu_unavailable_reason()
  if reason:
    pytest.skip(reason)
  c = hc.base_config("tiny")
  c.data.seq_len, c.train.batch_size = 128, 8
  c = hc.finalize(c)
  setup = train.build(c, aot.tpu_devices("v5p-8"))
  state = aot._with_sharding(setup.abstract_state, setup.state_shardings)  # pylint: disable=protected-access
  batch = aot.batch_like(setup, setup.objective.family)
  rng = jax.ShapeDtypeStruct((), jax.eval_shape(lambda: jax.random.key(0)).dtype,
                             sharding=sharding.replicated(setup.mesh))
  with sharding.activate(setup.mesh, setup.rules):
    compiled = train.jit_train_step(setup, batch).lower(state, batch, rng, None).compile()
  hlo = compiled.as_text()
  assert 'custom_call_target="tpu_custom_call"' in hlo
  for kernel in ("splash_mha_fwd_segmented", "splash_mha_dq_segmented", "splash_mha_dkv_segmented"):
    assert kernel in hlo, kernel
