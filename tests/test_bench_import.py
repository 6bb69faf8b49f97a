"""tools/bench_import.py (the import benchmark) as a user types it, and the bounded-write checkpointer it measures:
the random checkpoint it writes imports to exactly its tensors, the import bounds its write by its largest array, and a
save with `max_write_bytes` restores what was saved."""

import json
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hhh.run import checkpoint as ckpt_lib
from hhh.run import model as run_model

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_bench_import_on_a_small_checkpoint_from_a_relative_dir(tmp_path, monkeypatch):
  pytest.importorskip("safetensors")
  from safetensors.numpy import load_file  # pylint: disable=g-import-not-at-top
  from hhh import config as hc  # pylint: disable=g-import-not-at-top
  from hhh.hf import importer  # pylint: disable=g-import-not-at-top
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO))
  out = subprocess.run([sys.executable, str(REPO / "tools" / "bench_import.py"), "--layers=2", "--d_model=64",
                        "--heads=4", "--vocab=128", "--shards=2", "--dir=bench", "--keep", "--json=result.json"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stdout + out.stderr
  # 2 x 128 x 64 embeddings + 128 final norm + 2 layers x (4 x 64 norms + 64 x 192 + 192 qkv + 64 x 64 + 64 out
  # + 64 x 256 + 256 + 256 x 64 + 64 MLP) = 16,512 + 2 x 49,984
  assert "import: 116,480 parameters" in out.stdout, out.stdout
  result = json.loads((tmp_path / "result.json").read_text())
  assert result["parameters"] == 116_480 and result["model_bytes"] == 4 * 116_480
  assert result["peak_anon_bytes"] > 0 and result["peak_rss_bytes"] >= result["peak_anon_bytes"]
  assert result["seconds"] > 0
  hf_dir, run_dir = tmp_path / "bench" / "hf", tmp_path / "bench" / "run"
  index = json.loads((hf_dir / "model.safetensors.index.json").read_text())
  assert len(set(index["weight_map"].values())) == 2
  tensors = {}
  for f in sorted(set(index["weight_map"].values())):
    tensors.update(load_file(str(hf_dir / f)))
  ms, params = run_model.model_from_run(hc.model_config(str(run_dir)), hc.base_config("tiny").mesh, str(run_dir),
                                       what="checkpoint")
  np.testing.assert_array_equal(np.asarray(params["embedding"]), tensors["gpt_neox.embed_in.weight"])
  np.testing.assert_array_equal(np.asarray(params["unembedding"]["kernel"]), tensors["embed_out.weight"].T)
  np.testing.assert_array_equal(np.asarray(params["layers"]["mlp"]["wi"]["kernel"][1]),
                                tensors["gpt_neox.layers.1.mlp.dense_h_to_4h.weight"].T)
  # The import bounds its write by its largest parameter: the 2 stacked MLP kernels, 2 x 64 x 256 f32.
  seen = {}
  real = ckpt_lib.Checkpointer

  def spy(*args, **kwargs):
    seen.update(kwargs)
    return real(*args, **kwargs)

  monkeypatch.setattr(ckpt_lib, "Checkpointer", spy)
  summary = importer.import_checkpoint(str(hf_dir), str(tmp_path / "again"), log=lambda s: None)
  monkeypatch.undo()
  assert summary["largest_parameter_bytes"] == 2 * 64 * 256 * 4
  assert seen["max_write_bytes"] == 2 * 64 * 256 * 4 + 2**20
  # A rerun reuses the HF directory it wrote (same config) and replaces the run.
  again = subprocess.run([sys.executable, str(REPO / "tools" / "bench_import.py"), "--layers=2", "--d_model=64",
                          "--heads=4", "--vocab=128", "--shards=2", "--dir=bench"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
  assert again.returncode == 0, again.stdout + again.stderr
  assert "reusing" in again.stdout and not (tmp_path / "bench").exists()


def test_bounded_write_restores_what_was_saved(tmp_path):
  state = {"params": {"w": jnp.arange(12.0).reshape(3, 4), "b": jnp.ones((5,), jnp.float32)},
           "step": jnp.asarray(7)}
  c = ckpt_lib.Checkpointer(str(tmp_path), every=1, keep=1, async_save=False, max_write_bytes=100)
  c.save(7, state, {"train_batches": 7}, force=True)
  c.wait()
  c.close()
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), state)
  restored, data = ckpt_lib.Checkpointer(str(tmp_path), every=1, keep=1).restore(7, abstract)
  assert data == {"train_batches": 7}
  jax.tree.map(np.testing.assert_array_equal, restored, state)
  with pytest.raises(ValueError, match="max_write_bytes must be a positive number of bytes, got 0"):
    ckpt_lib.Checkpointer(str(tmp_path / "x"), every=1, keep=1, max_write_bytes=0)
