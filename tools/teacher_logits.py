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

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hhh.cli.quiet import quiet  # noqa: E402

quiet()  # start-up quieting, before jax and TensorFlow are imported

from absl import flags  # noqa: E402
from hhh import cli  # noqa: E402
from ml_collections import config_flags  # noqa: E402




def store(config, out: str, splits, max_examples: int = 0, top_k: int = 0, batch_size: int = 32) -> dict:
  import jax
  import jax.numpy as jnp
  from hhh.data import pipeline, teacher_files
  from hhh import scoring
  from hhh.core import paths
  from hhh import train as train_lib
  from hhh.objectives import distill

  out = paths.resolve(out)
  paths.resolve_config(config)
  k = int(top_k or config.objective.top_k)
  setup, params = train_lib.starting_params(config)
  model = setup.model
  ptok = distill.prompt_tokens(config.objective)
  cache = jax.jit(lambda p: scoring.prompt_cache(model, p, ptok))(params)  # once per run

  @jax.jit
  def teacher(tokens):
    logits = model.apply({"params": params}, tokens, prefix_cache=cache)["logits"]
    return distill.topk_with_remainder(logits, k)

  meta = {"k": k, "prompt_tokens": int(len(ptok)), "init_from": config.init_from, "task": config.data.task,
          "seq_len": int(config.data.seq_len), "vocab": config.data.vocab, "splits": {}}
  for split in splits:
    it = pipeline.make_iterator(config.data.task, split=split, family="distill", seq_len=int(config.data.seq_len),
                                batch_size=batch_size, vocab=config.data.vocab, seed=int(config.seed),
                                shuffle=False, repeat=False)
    done = teacher_files.write_split(out, split, it, lambda t: jax.device_get(teacher(jnp.asarray(t))), max_examples)
    meta["splits"][split] = done
    print(f"{split}: {done['examples']} examples -> {teacher_files.split_file(out, split)} ({done['seconds']:.1f}s)")
  teacher_files.write_meta(out, meta)
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
