"""Offline context distillation: store the prompted teacher's top-k next-token log-probs (+ a remainder bucket).

  python tools/teacher_logits.py --config=configs/distill.py:tiny,offline --config.init_from=LM_RUN \
      --out=TEACHER_DIR [--splits=train,validation] [--max_examples=2000]

The teacher is the run's initial model (fresh init with the config's seed + `init_from`, exactly what
`python -m hhh.train` starts from) conditioned on the HHH prompt (config.objective.prompt_file /
prompt_max_tokens), whose keys/values are computed once and reused for every batch. For each split it writes
TEACHER_DIR/{split}.npz with
  tokens [N, L] int32, loss_weights [N, L] f32          the distillation texts (data.task, unshuffled, in order)
  topk_ids [N, L, k] int32, topk_logprobs [N, L, k] f32  teacher's k most likely next tokens at every position
  remainder_logprob [N, L] f32                            log of the teacher's remaining probability mass
and TEACHER_DIR/meta.json. Training: --config.objective.teacher_dir=TEACHER_DIR (same config otherwise).
"""

from __future__ import annotations

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags  # noqa: E402
from hhh import cli  # noqa: E402
from ml_collections import config_flags  # noqa: E402




def initial_params(config):
  """The parameters `hhh.train.train` starts this config from (fresh init with its seed, then init_from)."""
  import jax
  import flax.linen as nn
  from hhh import checkpoint as ckpt_lib
  from hhh import train as train_lib
  setup = train_lib.build(config)
  init_rng = jax.random.split(jax.random.key(int(config.seed)), 3)[0]
  state = train_lib.init_state(setup, init_rng)
  params = state.params
  if config.init_from:
    params, _, _ = ckpt_lib.load_params(config.init_from, params, setup.state_shardings.params)
  return setup, params


def store(config, out: str, splits, max_examples: int = 0, top_k: int = 0, batch_size: int = 32) -> dict:
  import jax
  import jax.numpy as jnp
  import numpy as np
  from hhh.data import pipeline
  from hhh import paths
  from hhh.objectives import distill

  out = paths.resolve(out)
  paths.resolve_config(config)
  k = int(top_k or config.objective.get("top_k", 50))
  setup, params = initial_params(config)
  model = setup.model
  ptok = distill.prompt_tokens(config.objective)
  cache = jax.jit(lambda p: distill.prompt_cache(model, p, ptok))(params)  # once per run

  @jax.jit
  def teacher(tokens):
    logits = model.apply({"params": params}, tokens, prefix_cache=cache)["logits"]
    return distill.topk_with_remainder(logits, k)

  os.makedirs(out, exist_ok=True)
  meta = {"k": k, "prompt_tokens": int(len(ptok)), "init_from": config.init_from, "task": config.data.task,
          "seq_len": int(config.data.seq_len), "vocab": config.data.vocab, "splits": {}}
  for split in splits:
    t0 = time.perf_counter()
    it = pipeline.make_iterator(config.data.task, split=split, family="distill", seq_len=int(config.data.seq_len),
                                batch_size=batch_size, vocab=config.data.vocab, seed=int(config.seed),
                                shuffle=False, repeat=False)
    cols = {n: [] for n in ("tokens", "loss_weights", "topk_ids", "topk_logprobs", "remainder_logprob")}
    n = 0
    for b in it:
      keep = b["loss_weights"].sum(-1) > 0  # drop the padding rows of the last batch
      ids, lps, rem = jax.device_get(teacher(jnp.asarray(b["tokens"])))
      for name, v in (("tokens", b["tokens"]), ("loss_weights", b["loss_weights"]), ("topk_ids", ids),
                      ("topk_logprobs", lps), ("remainder_logprob", rem)):
        cols[name].append(np.asarray(v)[keep])
      n += int(keep.sum())
      if max_examples and n >= max_examples:
        break
    data = {name: np.concatenate(v)[: max_examples or None] for name, v in cols.items()}
    np.savez(distill.teacher_file(out, split), **data)
    meta["splits"][split] = {"examples": int(len(data["tokens"])), "seconds": time.perf_counter() - t0}
    print(f"{split}: {len(data['tokens'])} examples -> {distill.teacher_file(out, split)} "
          f"({time.perf_counter() - t0:.1f}s)")
  with open(os.path.join(out, "meta.json"), "w") as f:
    json.dump(meta, f, indent=2)
  return meta


def main():
  # Flags are defined here, not at import, so other tools (and tests) can import this module.
  config = config_flags.DEFINE_config_file("config", None, "distillation config, e.g. configs/distill.py:tiny,offline")
  out = flags.DEFINE_string("out", None, "output directory")
  splits = flags.DEFINE_list("splits", ["train", "validation"], "splits of data.task to store")
  max_examples = flags.DEFINE_integer("max_examples", 0, "examples per split (0: all)")
  top_k = flags.DEFINE_integer("top_k", 0, "k (0: config.objective.top_k, default 50)")
  batch = flags.DEFINE_integer("batch_size", 32, "teacher batch size")
  flags.mark_flags_as_required(["config", "out"])
  def run(_):
    store(config.value, out.value, splits.value, max_examples.value, top_k.value, batch.value)  # exit status 0

  cli.run(run, config_example="configs/distill.py:tiny,offline")


if __name__ == "__main__":
  main()
