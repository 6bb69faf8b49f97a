"""Issue 11 part 4: the core (model, objectives, trainer step, tools/bench.py) runs without TensorFlow or seqio.

Each check runs in a fresh subprocess whose first act is to install an import blocker: a sys.meta_path finder that
raises ImportError for tensorflow, seqio, tensorflow_datasets and tensorflow_text (and their submodules), as on an
accelerator machine that has only jax/flax/optax/orbax (ml-collections and absl are still required: the config
system is built on ml_collections.ConfigDict and absl flags). The data pipeline is imported only when data is read,
so none of this may touch the blocked modules.
"""
import json
import os
import subprocess
import sys
import textwrap

import pytest

import conftest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BLOCKED = ("tensorflow", "seqio", "tensorflow_datasets", "tensorflow_text")

_BLOCKER = textwrap.dedent(f"""
    import importlib.abc, sys
    BLOCKED = {BLOCKED!r}
    ATTEMPTS = []

    class _Blocker(importlib.abc.MetaPathFinder):
      def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
          ATTEMPTS.append(name)
          raise ImportError(f"{{name}} is blocked (tests/test_core_imports.py)")
        return None

    sys.meta_path.insert(0, _Blocker())
    for _m in list(sys.modules):
      assert _m.split(".")[0] not in BLOCKED, _m
""")

_CORE = _BLOCKER + textwrap.dedent("""
    import json
    import jax
    import numpy as np
    import flax.linen as nn

    import hhh.data, hhh.data.specs, hhh.data.vocab
    import hhh.train.aot
    import hhh.train as train
    import hhh.objectives.lm, hhh.objectives.imitation, hhh.objectives.binary
    import hhh.objectives.preference, hhh.objectives.distill
    from hhh import config as hc
    from hhh.core import sharding
    from hhh.data.specs import family_spec

    L, B = 32, 8
    c = hc.base_config("tiny")
    c.data.seq_len = L
    c.train.update(dict(steps=2, batch_size=B))
    c.mesh.shape.update({"data": 1, "fsdp": 1, "tensor": 1})
    setup = train.build(c, jax.devices()[:1])
    state = train.init_state(setup, jax.random.key(0))
    rng = np.random.default_rng(0)
    x = rng.integers(3, 40, (B, L + 1)).astype(np.int32)  # tests/test_train.py lm_batches' format
    local = {"decoder_input_tokens": x[:, :-1], "decoder_target_tokens": x[:, 1:],
             "decoder_loss_weights": np.ones((B, L), np.float32),
             "decoder_segment_ids": np.ones((B, L), np.int32),
             "decoder_positions": np.tile(np.arange(L, dtype=np.int32), (B, 1))}
    spec = family_spec("lm", B, L)
    assert {k: (v.shape, v.dtype) for k, v in local.items()} == spec, spec
    batch = train.global_batch(setup, local)
    step = train.jit_train_step(setup, batch)
    with sharding.activate(setup.mesh, setup.rules):
      state, metrics = step(state, batch, jax.random.key(1), None)
    loss = float(metrics["loss"])

    oc = hhh.objectives.default_config("distill")
    oc.prompt_max_tokens = 1000
    prompt = hhh.objectives.distill.prompt_tokens(oc)
    print(json.dumps({"loss": loss, "step": int(state.step), "prompt": prompt.tolist(),
                      "vocab": type(hhh.data.vocab.get_vocabulary("byte")).__name__,
                      "attempts": sorted(set(ATTEMPTS)),
                      "loaded": sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)}))
""")


def _env():
  env = {**os.environ, "PYTHONPATH": REPO, "JAX_PLATFORMS": "cpu", "CUDA_VISIBLE_DEVICES": ""}
  env.pop("XLA_FLAGS", None)  # one CPU device is enough
  # Nor the test run's compilation cache (tests/conftest.py): JAX's cache directory goes through etils.epath, which
  # probes for TensorFlow, and that probe is JAX's, not the core's.
  for k in conftest.CACHE_VARS:
    env.pop(k, None)
  return env


def _run(code, *args, timeout=300):
  p = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, env=_env(), capture_output=True, text=True,
                     timeout=timeout)
  assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-6000:]
  return p.stdout


def test_model_objectives_and_a_train_step_run_without_tensorflow_or_seqio():
  out = json.loads(_run(_CORE).strip().splitlines()[-1])
  assert out["loaded"] == []
  assert out["step"] == 1 and 0 < out["loss"] < 20, out
  # Without seqio the byte vocabulary is the pure-Python copy, and it tokenises the distillation prompt exactly as
  # seqio's does (the only blocked import the core attempts is that one, and it falls back).
  assert out["vocab"] == "PyByteVocabulary"
  assert set(out["attempts"]) <= {"seqio"}, out["attempts"]
  from hhh import objectives
  from hhh.objectives import distill
  oc = objectives.default_config("distill")
  oc.prompt_max_tokens = 1000
  assert out["prompt"] == distill.prompt_tokens(oc).tolist()


def test_data_package_imports_nothing_heavy():
  code = _BLOCKER + textwrap.dedent("""
      import hhh.data, hhh.data.specs, hhh.data.vocab, hhh.data.dialogue, hhh.data.pipeline
      assert hhh.data.vocab.vocab_size("byte") == 260 and hhh.data.vocab.eoc_id("byte") == 259
      try:
        hhh.data.pipeline.make_iterator("lab_lm", split="train", family="lm", seq_len=8, batch_size=1,
                                        vocab="byte", seed=0, shuffle=False, repeat=False)
      except ImportError as e:
        print("READING DATA NEEDS:", e)
      try:
        hhh.data.vocab.get_vocabulary("spm:/nonexistent.model")
      except ImportError as e:
        print("SPM NEEDS:", e)
  """)
  out = _run(code)
  assert "READING DATA NEEDS:" in out and "is blocked" in out
  assert "SPM NEEDS: vocabulary 'spm:/nonexistent.model' needs seqio" in out


_BENCH = _BLOCKER + textwrap.dedent("""
    import runpy
    sys.argv = ["tools/bench.py"] + sys.argv[1:]
    try:
      runpy.run_path("tools/bench.py", run_name="__main__")
    finally:
      print("LOADED", sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED))
""")


def test_bench_runs_without_tensorflow_or_seqio(tmp_path):
  for cfg in ("configs/pretrain.py:tiny", "configs/distill.py:tiny"):
    res = tmp_path / "bench.json"
    matmuls = cfg.startswith("configs/pretrain")
    out = _run(_BENCH, f"--config={cfg}", "--steps=2", "--matmul_n=64", "--config.train.batch_size=2",
               "--config.data.seq_len=32", f"--json={res}", *(["--matmuls"] if matmuls else ["--rounds=2"]))
    assert "LOADED []" in out
    full = json.loads(res.read_text())
    r = full["results"][0] if "results" in full else full  # several variants or --matmuls: a dict of lists
    assert r["batch_size"] == 2 and r["seq_len"] == 32 and r["tokens_per_s"] > 0, r
    # The CPU peak: measured at the start and, over several rounds, after each; MFU is against the best of them.
    assert len(r["peak_measurements"]) == (1 if matmuls else 3), r
    assert r["peak_flops_per_device"] == max(r["peak_measurements"]) and r["mfu"] == pytest.approx(
        r["achieved_flops"] / r["peak_flops_per_device"] / r["devices"])
    assert ("at the start and after each round" in out) != matmuls
    if matmuls:  # tiny: d_model 64, d_ff 256; 2 x 32 = 64 rows
      names = [m["matmul"] for m in full["matmuls"]]
      assert names == ["x @ wi (forward) [64,64]x[64,256]", "dy @ wi.T (input gradient) [64,256]x[256,64]",
                       "x.T @ dy (weight gradient) [64,64]x[64,256]", "h @ wo (forward) [64,256]x[256,64]"], names
      assert all(m["xla_gflops"] > 0 and "torch_gflops" not in m for m in full["matmuls"])
      assert "matmuls alone (fp32, GFLOP/s" in out
