"""Hugging Face interop (hhh.hf, tools/hf_import.py, tools/hf_export.py): random-init HF models of each
architecture built here with transformers (no downloads) -> import -> the same logits as transformers on padded
batches; export -> identical tensors; sharded import; a preference step on an imported model and the exported
classifier's score in PyTorch; per-choice log-probs as PyTorch computes them."""

import json
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
safetensors_numpy = pytest.importorskip("safetensors.numpy")

from hhh.run import checkpoint as ckpt_lib  # noqa: E402
from hhh.run import model as run_model
from hhh import config as hc  # noqa: E402
from hhh.core.errors import ConfigError  # noqa: E402
from hhh.hf import architectures, exporter, importer  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
VOCAB = 300  # covers the byte vocabulary (260 ids with the end-of-context token)


def _hf_config(arch):
  common = dict(vocab_size=VOCAB, tie_word_embeddings=False)
  if arch == "gpt_neox":
    return transformers.GPTNeoXConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                      intermediate_size=128, max_position_embeddings=256, rotary_pct=0.25,
                                      use_parallel_residual=True, hidden_act="gelu", layer_norm_eps=1e-5, **common)
  if arch == "llama":
    return transformers.LlamaConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                    intermediate_size=96, max_position_embeddings=256, rms_norm_eps=1e-6,
                                    rope_theta=10000.0, **common)
  return transformers.GPT2Config(vocab_size=VOCAB, n_embd=64, n_layer=2, n_head=4, n_positions=256,
                                 activation_function="gelu_new")


def _make_hf(arch, directory, seed=0):
  """A random HF model with every parameter perturbed (norms and biases are not left at 1 / 0), saved as safetensors."""
  torch.manual_seed(seed)
  model = transformers.AutoModelForCausalLM.from_config(_hf_config(arch)).eval()
  with torch.no_grad():
    for p in model.parameters():
      p.add_(0.05 * torch.randn_like(p))
  model.save_pretrained(directory, safe_serialization=True)
  return model


def _batch():
  rng = np.random.default_rng(1)
  tokens = rng.integers(3, 259, (3, 12)).astype(np.int64)
  mask = np.ones_like(tokens)
  mask[1, 7:] = 0  # right padding
  mask[2, 10:] = 0
  tokens[mask == 0] = 0
  return tokens, mask


def _hf_logits(model, tokens, mask):
  with torch.no_grad():
    return model(input_ids=torch.from_numpy(tokens), attention_mask=torch.from_numpy(mask)).logits.float().numpy()


def _hhh_logits(run_dir, tokens, mesh_cfg=None, devices=None):
  m = hc.model_config(str(run_dir))
  ms, params = run_model.model_from_run(m, mesh_cfg or hc.base_config("tiny").mesh, str(run_dir), what="checkpoint",
                                       devices=devices)
  from hhh.core import sharding
  with sharding.activate(ms.mesh, ms.rules):
    return np.asarray(jax.jit(lambda p, t: ms.model.apply({"params": p}, t)["logits"])(params, jnp.asarray(tokens)))


@pytest.fixture(scope="module", params=["gpt_neox", "llama", "gpt2"])
def imported(request, tmp_path_factory):
  root = tmp_path_factory.mktemp(request.param)
  model = _make_hf(request.param, root / "hf")
  summary = importer.import_checkpoint(str(root / "hf"), str(root / "run"), log=lambda s: None)
  return request.param, model, root, summary


def test_imported_logits_equal_transformers_on_padded_batches(imported):
  arch, model, root, summary = imported
  tokens, mask = _batch()
  want = _hf_logits(model, tokens, mask)
  got = _hhh_logits(root / "run", tokens.astype(np.int32))
  valid = mask.astype(bool)
  diff = np.abs(got[valid] - want[valid]).max()
  assert diff <= 1e-4, (arch, diff)
  assert summary["architecture"] == arch
  rec = json.loads((root / "run" / "config.json").read_text())
  assert rec["hf"]["architecture"] == arch and rec["model"]["vocab_size"] == VOCAB


def test_export_round_trip_is_exact(imported, tmp_path):
  arch, model, root, _ = imported
  exporter.export_checkpoint(str(root / "run"), str(tmp_path / "out"), log=lambda s: None)
  original = safetensors_numpy.load_file(str(root / "hf" / "model.safetensors"))
  exported = safetensors_numpy.load_file(str(tmp_path / "out" / "model.safetensors"))
  skip = (".attn.bias", ".attn.masked_bias", "rotary_emb.inv_freq", ".attention.bias", ".attention.masked_bias")
  names = {n for n in original if not n.endswith(skip)}
  assert names == set(exported), (sorted(names ^ set(exported)))
  for n in names:
    np.testing.assert_array_equal(original[n], exported[n], err_msg=n)
  reloaded = transformers.AutoModelForCausalLM.from_pretrained(str(tmp_path / "out")).eval()
  tokens, mask = _batch()
  np.testing.assert_array_equal(_hf_logits(reloaded, tokens, mask), _hf_logits(model, tokens, mask))


def test_sharded_import_gives_the_same_logits(imported, tmp_path):
  arch, _, root, _ = imported
  mesh = hc.base_config("tiny").mesh
  with mesh.unlocked() if mesh.is_locked else _Null():
    mesh.shape = ml_collections.ConfigDict(dict(data=2, fsdp=2, tensor=2))
  importer.import_checkpoint(str(root / "hf"), str(tmp_path / "run"), mesh_cfg=mesh, log=lambda s: None)
  tokens, _ = _batch()
  tokens = np.concatenate([tokens, tokens[:1]])  # 4 rows: divisible by data x fsdp
  one = _hhh_logits(root / "run", tokens.astype(np.int32))
  eight = _hhh_logits(tmp_path / "run", tokens.astype(np.int32), mesh_cfg=mesh)
  np.testing.assert_allclose(eight, one, atol=2e-5, rtol=0)


class _Null:
  def __enter__(self):
    return self

  def __exit__(self, *a):
    return False


def test_unsupported_checkpoints_fail_naming_the_problem(tmp_path):
  (tmp_path / "bad").mkdir()
  (tmp_path / "bad" / "config.json").write_text(json.dumps({"architectures": ["MistralForCausalLM"]}))
  with pytest.raises(ConfigError, match="unsupported Hugging Face architecture"):
    importer.import_checkpoint(str(tmp_path / "bad"), str(tmp_path / "run"), log=lambda s: None)
  with pytest.raises(ConfigError, match="no config.json"):
    importer.import_checkpoint(str(tmp_path), str(tmp_path / "run"), log=lambda s: None)
  cfg = _hf_config("llama").to_dict()
  cfg["rope_scaling"] = {"rope_type": "linear", "factor": 2.0}
  with pytest.raises(ConfigError, match="rope scaling"):
    architectures.model_config({**cfg, "architectures": ["LlamaForCausalLM"]})


def test_per_choice_logprobs_match_pytorch_with_the_bigbench_convention(tmp_path):
  """hhh.eval's scorer on an imported model: the summed log-prob of each continuation " {choice}" after
  "\\nHuman: {q}\\nAssistant:" equals PyTorch's on the same token ids."""
  from hhh import scoring
  from hhh.eval import examples
  model = _make_hf("gpt_neox", tmp_path / "hf", seed=3)
  importer.import_checkpoint(str(tmp_path / "hf"), str(tmp_path / "run"), log=lambda s: None)
  try:
    ex = examples.load("hhh_alignment_bigbench_mc", split="test", seq_len=256, k=2, vocab="byte", max_examples=6)
  except Exception as e:  # pylint: disable=broad-except
    pytest.skip(f"BIG-bench hhh_alignment not available: {e}")
  m = hc.model_config(str(tmp_path / "run"))
  ms, params = run_model.model_from_run(m, hc.base_config("tiny").mesh, str(tmp_path / "run"), what="checkpoint")
  scorer = scoring.Scorer.of(ms, params)
  got = scoring.score_lm(scorer, ex, batch_size=4)["sum"]
  for i in range(len(ex)):
    for j in range(2):
      t, rs, ei = ex.tokens[i, j], int(ex.response_start[i, j]), int(ex.eoc_index[i, j])
      with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=torch.from_numpy(t[None, :ei].astype(np.int64))).logits[0].double(),
                                 -1).numpy()
      want = sum(logp[p - 1, t[p]] for p in range(rs, ei))
      assert got[i, j] == pytest.approx(want, abs=2e-4), (i, j)


def _cli(args, cwd):
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO))
  return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=900, env=env)


@pytest.mark.slow
def test_import_train_a_preference_step_export_and_score_in_pytorch(tmp_path):
  """As a user types it: import (relative paths), one preference step from the import with the architecture read
  from the run (configs/preference.py:RUN), export the PM, and transformers' sequence classifier scores a sample ending
  in the end-of-context token exactly as hhh does."""
  _make_hf("gpt_neox", tmp_path / "pythia", seed=5)
  r = _cli([str(REPO / "tools" / "hf_import.py"), "--hf=pythia", "--out=runs/imported"], tmp_path)
  assert r.returncode == 0, r.stderr[-3000:]
  r = _cli(["-m", "hhh.train", f"--config={REPO}/configs/preference.py:runs/imported", "--workdir=runs/pm",
            "--config.init_from=runs/imported", "--config.train.steps=2", "--config.optim.warmup_steps=1",
            "--config.train.batch_size=8",
            "--config.data.seq_len=64", "--config.train.eval_every=0"], tmp_path)
  assert r.returncode == 0, r.stderr[-3000:]
  saved = json.loads((tmp_path / "runs" / "pm" / "config.json").read_text())
  assert saved["model"]["norm"] == "layer" and saved["model"]["parallel_residual"] is True
  r = _cli([str(REPO / "tools" / "hf_export.py"), "--run=runs/pm", "--out=exported"], tmp_path)
  assert r.returncode == 0, r.stderr[-3000:]
  cls = transformers.AutoModelForSequenceClassification.from_pretrained(str(tmp_path / "exported")).eval()
  assert type(cls).__name__ == "GPTNeoXForSequenceClassification"
  from hhh.data import vocab as vocab_lib
  v = vocab_lib.get_vocabulary("byte")
  ids = list(v.encode("\n\nHuman: Is the sky blue?\n\nAssistant: Yes, on a clear day.")) + [vocab_lib.eoc_id("byte")]
  rows = np.zeros((2, 64), np.int32)
  rows[0, :len(ids)] = ids
  rows[1, :len(ids) - 5] = ids[5:]
  eoc = np.asarray([len(ids) - 1, len(ids) - 6], np.int32)
  m = hc.model_config(str(tmp_path / "runs" / "pm"))
  m.score_head = True
  ms, params = run_model.model_from_run(m, hc.base_config("tiny").mesh, str(tmp_path / "runs" / "pm"),
                                       what="checkpoint")
  ours = np.asarray(ms.model.apply({"params": params}, jnp.asarray(rows), score_index=jnp.asarray(eoc),
                                   return_logits=False)["score"])
  with torch.no_grad():
    theirs = cls(input_ids=torch.from_numpy(rows.astype(np.int64)),
                 attention_mask=torch.from_numpy((rows != 0).astype(np.int64))).logits[:, 0].numpy()
  np.testing.assert_allclose(theirs, ours, atol=1e-4)
  assert np.abs(np.asarray(params["score_head"]["kernel"])).max() > 0  # trained: the head started at zero

  # docs/interop.md's HHH evaluation of that PM, as typed there (256-byte rows to keep it short), and the same choices
  # from the exported classifier in PyTorch on the same token ids, all 221 comparisons.
  from hhh.core import metrics
  from hhh.eval import examples
  try:
    ex = examples.load("hhh_alignment_bigbench_mc", split="test", seq_len=256, k=2, vocab="byte")
  except Exception as e:  # pylint: disable=broad-except
    pytest.skip(f"BIG-bench hhh_alignment not available: {e}")
  r = _cli(["-m", "hhh.eval", f"--config={REPO}/configs/eval.py:runs/pm", "--workdir=runs/pm_eval",
            "--config.pm_checkpoint=runs/pm", "--config.eval.suites=hhh", "--config.eval.conditions=pm",
            "--config.eval.seq_len=256"], tmp_path)
  assert r.returncode == 0, r.stderr[-3000:]
  evaluated = json.loads((tmp_path / "runs" / "pm_eval" / "eval.json").read_text())["hhh"]
  assert evaluated["n"] == len(ex) == 221
  hhh_correct = np.asarray(evaluated["conditions"]["pm"]["score"]["correct"])
  torch_scores = np.zeros((len(ex), 2))
  for i in range(len(ex)):
    for j in range(2):
      t, ei = ex.tokens[i, j], int(ex.eoc_index[i, j])
      assert t[ei] == vocab_lib.eoc_id("byte")
      with torch.no_grad():
        torch_scores[i, j] = cls(input_ids=torch.from_numpy(t[None, :ei + 1].astype(np.int64))).logits[0, 0].item()
  torch_correct = metrics.choice_correct(torch_scores, ex.label, ex.valid)
  margin = np.abs(torch_scores[:, 0] - torch_scores[:, 1])
  decided = margin > 1e-3  # farther apart than the two frameworks' float differences (atol 1e-4 above)
  assert decided.sum() >= len(ex) // 2, margin
  np.testing.assert_array_equal(hhh_correct[decided], torch_correct[decided])


@pytest.mark.parametrize("arch", ["gpt_neox", "llama"])
def test_exported_classifier_absorbs_the_score_bias_or_records_it(arch, tmp_path):
  """A ranking loss never moves the score head's bias, a binary one does: LayerNorm models fold it into the final
  norm's bias (scores equal), RMSNorm models record it as hhh_score_bias (scores differ by exactly that constant)."""
  _make_hf(arch, tmp_path / "hf", seed=7)
  importer.import_checkpoint(str(tmp_path / "hf"), str(tmp_path / "run"), log=lambda s: None)
  m = hc.model_config(str(tmp_path / "run"))
  m.score_head = True
  ms = run_model.build_model(m, hc.base_config("tiny").mesh)
  kernel = jax.random.normal(jax.random.key(1), (m.d_model, 1))
  params = {**jax.device_get(_load_lm(tmp_path / "run")),
            "score_head": {"kernel": kernel, "bias": jnp.asarray([0.75], jnp.float32)}}
  c = ckpt_lib.Checkpointer(str(tmp_path / "pm"), every=1, keep=1, async_save=False)
  c.save(1, {"params": params, "step": jnp.asarray(1)}, {"train_batches": 0}, force=True)
  c.wait()
  c.close()
  (tmp_path / "pm" / "config.json").write_text((tmp_path / "run" / "config.json").read_text())
  summary = exporter.export_checkpoint(str(tmp_path / "pm"), str(tmp_path / "out"), log=lambda s: None)
  cls = transformers.AutoModelForSequenceClassification.from_pretrained(str(tmp_path / "out")).eval()
  rows = np.asarray([[5, 9, 17, 33, 259, 0, 0], [7, 8, 259, 0, 0, 0, 0]], np.int32)
  eoc = np.asarray([4, 2], np.int32)
  ours = np.asarray(ms.model.apply({"params": params}, jnp.asarray(rows), score_index=jnp.asarray(eoc),
                                   return_logits=False)["score"])
  with torch.no_grad():
    theirs = cls(input_ids=torch.from_numpy(rows.astype(np.int64)),
                 attention_mask=torch.from_numpy((rows != 0).astype(np.int64))).logits[:, 0].numpy()
  cfg = json.loads((tmp_path / "out" / "config.json").read_text())
  if arch == "gpt_neox":
    assert "hhh_score_bias" not in cfg and summary["score_bias_not_absorbed"] == 0.0
    np.testing.assert_allclose(theirs, ours, atol=1e-4)
  else:
    assert cfg["hhh_score_bias"] == pytest.approx(0.75)
    np.testing.assert_allclose(theirs + 0.75, ours, atol=1e-4)


def _load_lm(run_dir):
  m = hc.model_config(str(run_dir))
  return run_model.model_from_run(m, hc.base_config("tiny").mesh, str(run_dir), what="checkpoint")[1]


def test_an_import_never_overwrites_a_training_run_and_overwrite_replaces_only_an_earlier_import(tmp_path):
  """The fault found from outside: `hf_import --out=RUN` over a training run exited 0 and deleted its checkpoints."""
  _make_hf("gpt_neox", tmp_path / "hf", seed=2)
  run = tmp_path / "run"  # a training run's shape: checkpoints 10, 20, 30, its config and metrics
  for step in (10, 20, 30):
    (run / "checkpoints" / str(step) / "state").mkdir(parents=True)
    (run / "checkpoints" / str(step) / "state" / "d").write_bytes(b"x" * 8)
  (run / "config.json").write_text('{"model": {"d_model": 64}}')
  (run / "metrics.jsonl").write_text('{"step": 1}\n')
  before = sorted((str(p.relative_to(run)), p.read_bytes() if p.is_file() else b"") for p in run.rglob("*"))
  for overwrite, message in ((False, r"run is not empty \(checkpoints, config.json, metrics.jsonl\): choose a new "
                                     r"directory, or pass --overwrite"),
                             (True, r"run is not an earlier hf_import \(metrics.jsonl\): --overwrite replaces only")):
    with pytest.raises(ConfigError, match=message):
      importer.import_checkpoint(str(tmp_path / "hf"), str(run), overwrite=overwrite, log=lambda s: None)
    assert sorted((str(p.relative_to(run)), p.read_bytes() if p.is_file() else b"") for p in run.rglob("*")) == before
  # An earlier import is replaced with --overwrite (and refused without it); the result loads.
  importer.import_checkpoint(str(tmp_path / "hf"), str(tmp_path / "imp"), log=lambda s: None)
  with pytest.raises(ConfigError, match="imp is not empty"):
    importer.import_checkpoint(str(tmp_path / "hf"), str(tmp_path / "imp"), log=lambda s: None)
  _make_hf("gpt_neox", tmp_path / "hf2", seed=3)
  importer.import_checkpoint(str(tmp_path / "hf2"), str(tmp_path / "imp"), overwrite=True, log=lambda s: None)
  importer.import_checkpoint(str(tmp_path / "hf2"), str(tmp_path / "fresh"), log=lambda s: None)
  np.testing.assert_array_equal(jax.device_get(_load_lm(tmp_path / "imp"))["embedding"],
                                jax.device_get(_load_lm(tmp_path / "fresh"))["embedding"])
  assert json.loads((tmp_path / "imp" / "config.json").read_text())["hf"]["source"] == str(tmp_path / "hf2")


def test_gpt2_with_its_own_lm_head_imports_and_exports_exactly(tmp_path):
  """GPT-2 with tie_word_embeddings=False (an lm_head.weight of its own) used to fail with an internal error."""
  torch.manual_seed(4)
  cfg = transformers.GPT2Config(vocab_size=VOCAB, n_embd=64, n_layer=2, n_head=4, n_positions=256,
                                activation_function="gelu_new", tie_word_embeddings=False)
  model = transformers.AutoModelForCausalLM.from_config(cfg).eval()
  with torch.no_grad():
    for p in model.parameters():
      p.add_(0.05 * torch.randn_like(p))
  model.save_pretrained(tmp_path / "hf", safe_serialization=True)
  assert "lm_head.weight" in safetensors_numpy.load_file(str(tmp_path / "hf" / "model.safetensors"))
  importer.import_checkpoint(str(tmp_path / "hf"), str(tmp_path / "run"), log=lambda s: None)
  tokens, mask = _batch()
  got = _hhh_logits(tmp_path / "run", tokens.astype(np.int32))
  assert np.abs(got[mask.astype(bool)] - _hf_logits(model, tokens, mask)[mask.astype(bool)]).max() <= 1e-4
  exporter.export_checkpoint(str(tmp_path / "run"), str(tmp_path / "out"), log=lambda s: None)
  exported = safetensors_numpy.load_file(str(tmp_path / "out" / "model.safetensors"))
  np.testing.assert_array_equal(exported["lm_head.weight"], model.lm_head.weight.detach().numpy())


def test_a_damaged_hf_directory_is_one_error_naming_the_file(tmp_path):
  _make_hf("gpt_neox", tmp_path / "hf", seed=6)
  st = tmp_path / "hf" / "model.safetensors"
  whole = st.read_bytes()
  st.write_bytes(whole[:len(whole) // 2])  # cut short: the header is whole, the data is not
  with pytest.raises(ConfigError, match=r"is the file complete\?|is it complete\?"):
    importer.import_checkpoint(str(tmp_path / "hf"), str(tmp_path / "run1"), log=lambda s: None)
  st.write_bytes((10 ** 12).to_bytes(8, "little") + b"{}")  # a header length far beyond the file
  with pytest.raises(ConfigError, match=r"model.safetensors is not a readable safetensors file"):
    importer.import_checkpoint(str(tmp_path / "hf"), str(tmp_path / "run2"), log=lambda s: None)
  (tmp_path / "hf" / "config.json").write_text('{"architectures": ["GPTNeoXForCausalLM"],')
  with pytest.raises(ConfigError, match=r"config.json is not valid JSON \("):
    importer.import_checkpoint(str(tmp_path / "hf"), str(tmp_path / "run3"), log=lambda s: None)
  assert not any((tmp_path / f"run{i}").exists() for i in (1, 2, 3))  # nothing written on a failed import
