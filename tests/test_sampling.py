"""Sampling (hhh.sampling, hhh.sample, hhh.chat): the decode cache against the full forward, token choice against
hand-computed distributions, determinism, one device against the (data, fsdp, tensor) mesh, stop strings, errors,
and the two commands on a checkpoint trained here."""

import functools
import json
import math
import os
import pathlib
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

import conftest
from hhh.run import model as run_model
from hhh import config as hc
from hhh import sampling
from hhh.core import sharding
from hhh.data import vocab as vocab_lib
from hhh.core.errors import ConfigError
from hhh.models.kv_cache import unrolled_params
from hhh.models.transformer import Transformer, TransformerConfig, init_inputs

REPO = pathlib.Path(__file__).resolve().parents[1]
VOCAB = vocab_lib.get_vocabulary("byte")
EOS = vocab_lib.eos_id()


# ----------------------------------------------------------------------------------------------- the model's cache


@functools.lru_cache(maxsize=None)
def small_model():
  """A scanned model, its parameters, and the unrolled model + parameters that decode uses."""
  cfg = TransformerConfig(vocab_size=300, d_model=32, n_layers=2, n_heads=4, max_len=128)
  model = Transformer(cfg)
  params = nn.meta.unbox(jax.jit(model.init)(jax.random.key(1), init_inputs(cfg)))["params"]
  flat = Transformer(TransformerConfig(**{**vars(cfg), "scan_layers": False}))
  return model, params, flat, unrolled_params(params, cfg.n_layers)


def _prefix(model, params, kind):
  if kind is None:
    return None, 0
  tokens = jnp.asarray(np.random.default_rng(7).integers(3, 259, (1, 11)), jnp.int32)
  stacked = jax.jit(lambda p, t: jax.tree.map(lambda c: c[:, 0], model.apply(
      {"params": p}, t, return_cache=True, return_logits=False)["cache"]))(params, tokens)
  if kind == "per_layer":
    return {k: tuple(c[i] for i in range(c.shape[0])) for k, c in stacked.items()}, 11
  return stacked, 11


@pytest.mark.parametrize("prefix_kind", [None, "stacked", "per_layer"])
def test_decode_logits_equal_the_full_forward_at_every_step(prefix_kind):
  """Right-padded prompts of lengths 5, 9, 3: prefill, then 6 single-token steps and one 2-token step; at every
  step each row's next-token logits equal a full forward pass over that row's tokens alone (f32, 1e-5)."""
  model, params, flat, fparams = small_model()
  prefix, p_len = _prefix(model, params, prefix_kind)
  rng = np.random.default_rng(0)
  rows = [list(rng.integers(3, 259, n)) for n in (5, 9, 3)]
  tokens = np.zeros((3, 9), np.int32)
  for i, r in enumerate(rows):
    tokens[i, :len(r)] = r
  lengths = jnp.asarray([len(r) for r in rows], jnp.int32)
  prefill = jax.jit(lambda p, t, n, c: sampling.prefill(flat, p, t, n, 24, c))
  step = jax.jit(lambda p, cache, t, c: sampling.decode_step(flat, p, cache, t, c))
  cache, logits = prefill(fparams, jnp.asarray(tokens), lengths, prefix)
  assert len(cache["k"]) == 2 and cache["k"][0].shape == (3, 4, 24, 8)  # per layer [B, heads, slots, head_dim]
  np.testing.assert_array_equal(cache["index"], lengths)
  stacked = None if prefix is None else _prefix(model, params, "stacked")[0]
  forward = jax.jit(lambda p, t: model.apply({"params": p}, t, prefix_cache=stacked)["logits"][0])

  def full(seq):  # the scanned training model over one row alone (causal: the zeros after it change nothing)
    return forward(params, jnp.asarray([list(seq) + [0] * (32 - len(seq))], jnp.int32))[:len(seq)]

  checked = 0
  for _ in range(6):
    for i in range(3):
      np.testing.assert_allclose(logits[i], full(rows[i])[-1], atol=1e-5, rtol=0)
      checked += 1
    nxt = np.asarray(jnp.argmax(logits, -1), np.int32)
    for i in range(3):
      rows[i].append(int(nxt[i]))
    out, cache = step(fparams, cache, jnp.asarray(nxt)[:, None], prefix)
    logits = out[:, 0]
  np.testing.assert_array_equal(cache["index"], lengths + 6)
  two = np.asarray([[5, 6], [7, 8], [9, 10]], np.int32)  # a chunk of two tokens per row
  out, cache = step(fparams, cache, jnp.asarray(two), prefix)
  for i in range(3):
    np.testing.assert_allclose(logits[i], full(rows[i])[-1], atol=1e-5, rtol=0)
    ref = full(rows[i] + list(two[i]))
    np.testing.assert_allclose(out[i], ref[-2:], atol=1e-5, rtol=0)
  np.testing.assert_array_equal(cache["index"], lengths + 8)
  assert checked == 18 and p_len == (0 if prefix_kind is None else 11)


def test_decode_needs_the_unrolled_model():
  model, params, _, _ = small_model()
  cache = {"k": (jnp.zeros((1, 4, 8, 8)),) * 2, "v": (jnp.zeros((1, 4, 8, 8)),) * 2, "index": jnp.zeros((1,), int)}
  with pytest.raises(ValueError, match="unrolled"):
    model.apply({"params": params}, jnp.ones((1, 1), jnp.int32), cache=cache)


def test_unrolled_params_give_the_scanned_model():
  model, params, flat, fparams = small_model()
  t = jnp.asarray(np.random.default_rng(1).integers(3, 259, (2, 10)), jnp.int32)
  logits = lambda m: jax.jit(lambda p, t: m.apply({"params": p}, t)["logits"])  # noqa: E731
  np.testing.assert_allclose(logits(flat)(fparams, t), logits(model)(params, t), atol=1e-6)


# ----------------------------------------------------------------------------------------------- token choice

LOGITS = np.array([2.0, 1.0, 0.5, 0.0, -1.0], np.float32)


def _probs(temperature=1.0, top_k=0, top_p=1.0, logits=LOGITS):
  return np.asarray(jax.nn.softmax(sampling.filter_logits(jnp.asarray(logits), temperature, top_k, top_p)))


def _norm(weights):
  w = np.asarray(weights, np.float64)
  return w / w.sum()


def test_temperature_top_k_top_p_match_hand_computed_distributions():
  e = math.exp
  np.testing.assert_allclose(_probs(), _norm([e(2), e(1), e(.5), e(0), e(-1)]), atol=1e-6)
  # temperature 2: logits halved
  np.testing.assert_allclose(_probs(temperature=2.0), _norm([e(1), e(.5), e(.25), e(0), e(-.5)]), atol=1e-6)
  # top-k 2: the two largest, renormalised
  np.testing.assert_allclose(_probs(top_k=2), _norm([e(2), e(1), 0, 0, 0]), atol=1e-6)
  # top-p: softmax = [.5630, .2071, .1256, .0762, .0280]; mass before each = [0, .563, .770, .896, .972]
  np.testing.assert_allclose(_probs(top_p=0.5), [1, 0, 0, 0, 0], atol=1e-6)
  np.testing.assert_allclose(_probs(top_p=0.7), _norm([e(2), e(1), 0, 0, 0]), atol=1e-6)
  np.testing.assert_allclose(_probs(top_p=0.8), _norm([e(2), e(1), e(.5), 0, 0]), atol=1e-6)
  # all three: logits / 0.5 = [4, 2, 1, 0, -2]; top-3 -> [.8438, .1142, .0420]; top_p 0.9 keeps the first two
  np.testing.assert_allclose(_probs(temperature=0.5, top_k=3, top_p=0.9), _norm([e(4), e(2), 0, 0, 0]), atol=1e-6)
  np.testing.assert_allclose(_probs(temperature=0.5, top_k=3, top_p=0.99), _norm([e(4), e(2), e(1), 0, 0]),
                             atol=1e-6)
  # ties with the last kept value are kept
  np.testing.assert_allclose(_probs(top_k=1, logits=np.array([1.0, 1.0, 0.0], np.float32)), [.5, .5, 0], atol=1e-6)
  # off: top_k 0 and top_p 1 change nothing
  np.testing.assert_allclose(_probs(top_k=0, top_p=1.0), _probs(), atol=0)


def test_draws_follow_the_filtered_distribution_and_temperature_0_is_greedy():
  logits = jnp.broadcast_to(jnp.asarray(LOGITS), (4000, 5))
  keys = jax.random.split(jax.random.key(0), 4000)
  toks = np.asarray(jax.jit(sampling.choose_tokens)(logits, keys, 1.0, 2, 1.0))
  assert set(np.unique(toks)) == {0, 1}
  p0 = math.exp(2) / (math.exp(2) + math.exp(1))  # 0.731
  assert abs(np.mean(toks == 0) - p0) < 4 * math.sqrt(p0 * (1 - p0) / 4000)
  greedy = np.asarray(sampling.choose_tokens(jnp.asarray([[0.0, 3.0, 1.0], [5.0, 0.0, 5.0]]), keys[:2], 0.0, 0, 1.0))
  np.testing.assert_array_equal(greedy, [1, 0])


# ----------------------------------------------------------------------------------------------- the sampler

_MODELS: dict = {}


def make_sampler(mesh_shape=(1, 1, 1), *, prefix_len=24, batch_size=8, eos_id=None):
  """The tiny size on a (data, fsdp, tensor) mesh, random parameters (the same values on every mesh)."""
  n = int(np.prod(mesh_shape))
  if jax.device_count() < n:
    pytest.skip(f"needs {n} devices (tests/conftest.py asks XLA for 8 CPU devices)")
  if mesh_shape not in _MODELS:
    c = hc.base_config("tiny")
    mesh_cfg = ml_collections.ConfigDict(c.mesh.to_dict())
    mesh_cfg.shape = ml_collections.ConfigDict(dict(zip(("data", "fsdp", "tensor"), mesh_shape)))
    ms = run_model.build_model(c.model, mesh_cfg, jax.devices()[:n])
    with sharding.activate(ms.mesh, ms.rules):
      params = jax.jit(lambda r: nn.meta.unbox(ms.model.init(r, init_inputs(ms.model.cfg))["params"]),
                       out_shardings=ms.shardings)(jax.random.key(3))
    _MODELS[mesh_shape] = ms, params
  ms, params = _MODELS[mesh_shape]
  prefix = np.random.default_rng(5).integers(3, 259, prefix_len) if prefix_len else None
  return sampling.Sampler(ms.model, params, ms.mesh, ms.rules, VOCAB, prefix_tokens=prefix, batch_size=batch_size,
                          eos_id=eos_id)


PROMPTS = ["Hello there, assistant.", "Hi", "What is the capital of France? Please answer briefly."]


def _ids(texts=PROMPTS):
  return [VOCAB.encode(t) for t in texts]


def _key(samples):
  return [(s.prompt_index, s.sample_index, s.tokens, s.text, s.stop_reason) for s in samples]


def test_greedy_is_identical_on_one_device_and_on_a_data_fsdp_tensor_mesh():
  settings = sampling.Settings(max_new_tokens=16, temperature=0.0)
  one = make_sampler((1, 1, 1)).generate(_ids(), settings)
  mesh = make_sampler((2, 2, 2))
  assert dict(mesh.mesh.shape) == {"slice": 1, "data": 2, "fsdp": 2, "tensor": 2}
  many = mesh.generate(_ids(), settings)
  assert _key(one) == _key(many)
  assert all(len(s.tokens) == 16 for s in one)
  for a, b in zip(one, many):
    np.testing.assert_allclose(a.logprobs, b.logprobs, atol=1e-5)
  # The cache really is sharded like the activations: rows over the data axes, heads over tensor.
  state = mesh.start_state(_ids(), [(0, 0), (1, 0), (2, 0)], [0, 1, 2], settings, 4)
  spec = state["cache"]["k"][0].sharding.spec
  assert tuple(spec)[:2] == (("slice", "data", "fsdp"), "tensor"), spec


def test_same_seed_same_samples_different_seed_different_samples():
  s = make_sampler()
  settings = sampling.Settings(max_new_tokens=16, temperature=1.0, num_samples=2, seed=11)
  a, b = s.generate(_ids(), settings), s.generate(_ids(), settings)
  assert _key(a) == _key(b)
  assert [(x.prompt_index, x.sample_index) for x in a] == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]
  assert a[0].tokens != a[1].tokens  # two samples of one prompt differ
  c = s.generate(_ids(), sampling.Settings(max_new_tokens=16, temperature=1.0, num_samples=2, seed=12))
  assert all(x.tokens != y.tokens for x, y in zip(a, c))


def test_a_batch_gives_each_row_what_it_gets_alone():
  s = make_sampler()
  for settings in (sampling.Settings(max_new_tokens=16, temperature=0.0),
                   sampling.Settings(max_new_tokens=16, temperature=0.8, top_k=40, top_p=0.95, seed=3)):
    batch = s.generate(_ids(), settings)
    alone = [s.generate([p], settings, prompt_indices=[i])[0] for i, p in enumerate(_ids())]
    assert _key(batch) == _key(alone)
  # Several batches (batch_size 2 rows): the same samples as one batch.
  small = make_sampler(batch_size=2)
  settings = sampling.Settings(max_new_tokens=16, temperature=0.8, num_samples=2, seed=3)
  assert _key(small.generate(_ids(), settings)) == _key(s.generate(_ids(), settings))


def test_logprobs_are_those_of_the_unmodified_model_distribution():
  """Sampled with temperature 0.7 and top-k 5, each returned log-prob is log softmax of the model's own logits."""
  s = make_sampler()
  out = s.generate(_ids()[:2], sampling.Settings(max_new_tokens=12, temperature=0.7, top_k=5, seed=1))
  prefix = {k: jnp.stack(v) for k, v in s.prefix.items()}  # per layer -> [layers, P, heads, head_dim]
  for sample, prompt in zip(out, _ids()[:2]):
    seq = jnp.asarray([list(prompt) + sample.tokens], jnp.int32)
    logits = s.model.apply({"params": s.params}, seq, prefix_cache=prefix)["logits"][0]
    logp = jax.nn.log_softmax(logits, -1)
    want = [float(logp[len(prompt) - 1 + i, t]) for i, t in enumerate(sample.tokens)]
    np.testing.assert_allclose(sample.logprobs, want, atol=1e-5)
    assert sample.sum_logprob == pytest.approx(sum(want), abs=1e-4)


def test_stop_strings_are_cut_exactly_and_stop_the_loop():
  s = make_sampler()
  free = s.generate(_ids()[:1], sampling.Settings(max_new_tokens=48, temperature=0.0))[0]
  toks = free.tokens
  printable = [32 <= t - 3 <= 126 for t in toks]
  at = next(j for j in range(2, len(toks) - 1) if printable[j] and printable[j + 1])
  stop = bytes([toks[at] - 3, toks[at + 1] - 3]).decode()
  first = free.text.find(stop)
  assert first >= 0
  cut = s.generate(_ids()[:1], sampling.Settings(max_new_tokens=48, temperature=0.0, stop=(stop, "\x00never")))[0]
  assert cut.stop_reason == "stop"
  assert cut.text == free.text[:first] and stop not in cut.text
  assert cut.tokens == toks[:len(cut.tokens)] and VOCAB.decode(cut.tokens) == cut.text
  np.testing.assert_allclose(cut.logprobs, free.logprobs[:len(cut.tokens)], atol=1e-6)
  # The loop itself stopped right after the stop string's last token (not at max_new_tokens).
  settings = sampling.Settings(max_new_tokens=48, temperature=0.0, stop=(stop,))
  state = s.decode(s.start_state(_ids()[:1], [(0, 0)], [0], settings, 1), 48, settings, s.stop_ids(settings))
  ends = [j + 1 for j in range(1, len(toks)) if toks[j - 1:j + 1] == [toks[at], toks[at + 1]]]
  assert int(state["step"]) == ends[0] < 48


def test_finish_row_cuts_at_stop_strings_and_keeps_the_end_of_sequence_token():
  stop = ("\n\nHuman:",)
  ids = VOCAB.encode(" Sure.\n\nHuman: more")
  s = sampling.finish_row(VOCAB, EOS, ids, [-1.0] * len(ids), stop)
  assert (s.text, s.tokens, s.stop_reason) == (" Sure.", VOCAB.encode(" Sure."), "stop")
  assert s.logprobs == [-1.0] * 6
  ids = VOCAB.encode(" Hi") + [EOS] + VOCAB.encode("junk")
  s = sampling.finish_row(VOCAB, EOS, ids, list(range(len(ids))), stop)
  assert (s.text, s.tokens, s.logprobs, s.stop_reason) == (" Hi", ids[:4], [0.0, 1.0, 2.0, 3.0], "eos")
  s = sampling.finish_row(VOCAB, EOS, VOCAB.encode("abc"), [0.0] * 3, stop)
  assert (s.text, s.stop_reason) == ("abc", "length")
  assert sampling.first_stop("a\n\nHuman: b\n-----", ("\n-----", "\n\nHuman:")) == 1
  assert sampling.hold_back("Sure.\n\nHu", stop) == "Sure."
  assert sampling.hold_back("Sure.", stop) == "Sure."


def test_stream_hands_out_the_text_of_generate_in_pieces():
  s = make_sampler()
  settings = sampling.Settings(max_new_tokens=20, temperature=0.0)
  whole = s.generate(_ids()[:1], settings)[0]
  pieces = []
  streamed = s.stream(_ids()[0], settings, chunk=3, on_text=pieces.append)
  assert _key([streamed]) == _key([whole])
  assert "".join(pieces) == whole.text and len(pieces) > 1


def test_eos_ends_a_row_early():
  s = make_sampler()
  settings = sampling.Settings(max_new_tokens=16, temperature=0.0)
  free = s.generate(_ids()[:1], settings)[0]
  # Make the 5th greedy token the end-of-sequence id: that row ends there, the token and its log-prob kept.
  eos_sampler = make_sampler(eos_id=free.tokens[4])
  out = eos_sampler.generate(_ids()[:1], settings)[0]
  assert out.stop_reason == "eos" and out.tokens == free.tokens[:free.tokens.index(free.tokens[4]) + 1]


def test_bad_input_is_a_clear_error(tmp_path):
  s = make_sampler()
  settings = sampling.Settings(max_new_tokens=100, temperature=0.0)
  room = 512 - 24 - 100  # the tiny size's max_len, its 24-token shared prompt, max_new_tokens
  assert s.max_len == 512 and s.room(settings) == room
  with pytest.raises(ConfigError, match=rf"prompt 1 is {room + 1} tokens, longer than the {room} .*model.max_len=512 "
                     rf"= 24 \(shared prompt\) \+ 100 \(max_new_tokens\)"):
    s.generate([[5] * 10, [5] * (room + 1)], settings)
  with pytest.raises(ConfigError, match="prompt 0 is empty"):
    s.generate([[]], settings)
  with pytest.raises(ConfigError, match="top_p must be in"):
    sampling.Settings(top_p=0.0)
  with pytest.raises(ConfigError, match="temperature must be >= 0"):
    sampling.Settings(temperature=-1)
  empty = tmp_path / "empty.jsonl"
  empty.write_text("\n\n")
  with pytest.raises(ConfigError, match=f"prompts file {empty} holds no prompts"):
    sampling.read_prompts(str(empty))
  with pytest.raises(ConfigError, match="does not exist"):
    sampling.read_prompts(str(tmp_path / "missing.txt"))
  with pytest.raises(ConfigError, match="line 2: an object needs"):
    (tmp_path / "bad.jsonl").write_text('"ok"\n{"text": 1}\n')
    sampling.read_prompts(str(tmp_path / "bad.jsonl"))
  with pytest.raises(ConfigError, match="--config.prompts is required"):
    sampling.read_prompts("")
  (tmp_path / "p.jsonl").write_text('"one"\n\n{"prompt": "two\\nlines"}\n')
  assert sampling.read_prompts(str(tmp_path / "p.jsonl")) == ["one", "two\nlines"]
  (tmp_path / "p.txt").write_text("first\n\nsecond\n")
  assert sampling.read_prompts(str(tmp_path / "p.txt")) == ["first", "second"]
  assert sampling.read_prompts("just some text") == ["just some text"]
  assert sampling.format_context("hi", "dialogue") == "\n\nHuman: hi\n\nAssistant:"
  with pytest.raises(ConfigError, match="format must be"):
    sampling.format_context("hi", "chatml")


def _sample_config(size):
  return hc.load(f"configs/sample.py:{size}")


def test_sample_config_is_locked_and_sized():
  c = _sample_config("tiny")
  assert c.model.max_len == 2048 and c.prompt == "hhh" and c.stop == ("\n\nHuman:",) and c.temperature == 1.0
  with pytest.raises(AttributeError, match="temprature"):
    c.temprature = 0.5
  big = _sample_config("13m")
  assert big.model.dtype == "bfloat16" and big.model.max_len == 8192
  assert sampling.Settings.from_config(c) == sampling.Settings(max_new_tokens=128, stop=("\n\nHuman:",))


# ----------------------------------------------------------------------------------------------- the commands


def _env():
  return dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO))


def _run(args, cwd, timeout=600, stdin=None):
  return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                        env=_env(), input=stdin)


@pytest.mark.parametrize("command", ["hhh.sample", "hhh.chat"])
def test_help_shows_the_flags_and_exits_0(command):
  r = _run(["-m", command, "--help"], REPO)
  assert r.returncode == 0, r.stderr
  assert "--config" in r.stdout and "configs/sample.py" in r.stdout
  if command == "hhh.sample":
    assert "--out" in r.stdout and "JSONL" in r.stdout
  else:
    assert "/settings" in r.stdout and "/reset" in r.stdout


def test_a_missing_checkpoint_or_a_misspelt_key_fails_naming_it(tmp_path):
  cfg = f"--config={REPO}/configs/sample.py:tiny"
  r = conftest.run_in_process(["-m", "hhh.sample", cfg, "--config.checkpoint=runs/none", "--config.prompts=hi",
                              "--out=x.jsonl"], tmp_path)
  assert r.returncode == 1
  lines = r.stderr.strip().splitlines()
  assert lines[0] == f"python -m hhh.sample: error: checkpoint: {tmp_path / 'runs/none'} does not exist", r.stderr
  assert "Traceback" not in r.stderr and not (tmp_path / "x.jsonl").exists()
  r = conftest.run_in_process(["-m", "hhh.sample", cfg, "--config.temprature=0", "--config.prompts=hi",
                              "--out=x.jsonl"], tmp_path)
  assert r.returncode != 0 and 'Did you mean "temperature"' in r.stderr


@pytest.fixture
def tiny_run(cli_runs):
  """A tiny LM trained by the real trainer from the command line (conftest.CliRuns; read-only)."""
  return cli_runs.lm


@pytest.mark.slow
def test_sample_command_writes_jsonl_to_a_relative_path(tiny_run, tmp_path):
  (tmp_path / "prompts.jsonl").write_text('"Hello, who are you?"\n{"prompt": "Tell me a joke."}\n')
  args = ["-m", "hhh.sample", f"--config={REPO}/configs/sample.py:tiny", f"--config.checkpoint={tiny_run}",
          "--config.prompts=prompts.jsonl", "--config.max_new_tokens=12", "--config.num_samples=2",
          "--config.temperature=0.9", "--config.top_p=0.95", "--config.seed=4", "--out=out/samples.jsonl"]
  r = conftest.run_in_process(args, tmp_path)  # what the command does; the chat test below starts a process
  assert r.returncode == 0, r.stderr[-3000:]
  out = tmp_path / "out" / "samples.jsonl"
  records = [json.loads(line) for line in out.read_text().splitlines()]
  assert [(x["prompt_index"], x["sample_index"]) for x in records] == [(0, 0), (0, 1), (1, 0), (1, 1)]
  first = records[0]
  assert first["prompt"] == "Hello, who are you?" and first["context"] == "\n\nHuman: Hello, who are you?\n\nAssistant:"
  assert len(first["tokens"]) == len(first["logprobs"]) == first["num_tokens"] <= 12
  assert first["sum_logprob"] == pytest.approx(sum(first["logprobs"]))
  assert all(lp <= 0 for x in records for lp in x["logprobs"])
  assert first["stop_reason"] in sampling.STOP_REASONS
  st = first["settings"]
  assert st["checkpoint"] == str(tiny_run) and st["prompt"] == "hhh" and st["prompt_tokens"] > 0
  assert (st["temperature"], st["top_p"], st["seed"], st["num_samples"], st["max_new_tokens"]) == (0.9, 0.95, 4, 2, 12)
  assert f"-> {out}" in r.stdout
  # Same seed, same samples; --out=- is stdout, progress on stderr.
  again = conftest.run_in_process(args[:-1] + ["--out=-"], tmp_path)
  assert again.returncode == 0, again.stderr[-3000:]
  assert [json.loads(x)["tokens"] for x in again.stdout.splitlines()] == [x["tokens"] for x in records]
  assert "-> stdout" in again.stderr and not (tmp_path / "-").exists()


@pytest.mark.slow
def test_chat_command_through_stdin(tiny_run, tmp_path):
  session = (b"Hello there\n/settings temperature=0 max_new_tokens=6\nAnd now?\n/settings top_p=2\n/reset\n/nope\n"
             b"caf\xe9 latin-1\n")  # the last line is not UTF-8: one line says so, no traceback
  r = subprocess.run([sys.executable, "-m", "hhh.chat", f"--config={REPO}/configs/sample.py:tiny",
                      f"--config.checkpoint={tiny_run}", "--config.prompt=none", "--config.max_new_tokens=8"],
                     cwd=tmp_path, capture_output=True, timeout=600, env=_env(), input=session)
  out, err = r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8", "replace")
  assert r.returncode == 0 and "Traceback" not in err, err[-3000:]
  assert out.count("(ignored a line that is not valid UTF-8)") == 1
  assert "shared prompt none (0 tokens)" in out
  assert out.count("Assistant:") == 2
  assert "(settings: temperature=0.0 top_k=0 top_p=1.0 max_new_tokens=6" in out and "1 turn(s) so far" in out
  assert "(settings unchanged: top_p must be in (0, 1]" in out
  assert "(new conversation)" in out and "(unknown command /nope" in out
