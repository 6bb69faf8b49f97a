"""Import a Hugging Face GPT-NeoX (Pythia), Llama or GPT-2 checkpoint as an hhh run directory (docs/interop.md).

  python tools/hf_import.py --hf=DIR --out=RUN_DIR [--vocab_size=N] [--overwrite]

DIR is a local HF model directory (config.json + model.safetensors or model.safetensors.index.json with its shards;
nothing is downloaded). RUN_DIR must be new or empty (--overwrite replaces an earlier import, never a training run); it
gets checkpoints/0/state (orbax), config.json (the hhh `model` section and the source
HF config) and the tokenizer files. Every command then takes it, with the architecture from RUN_DIR/config.json:

  python -m hhh.train --config=configs/preference.py:RUN_DIR --config.init_from=RUN_DIR --config.data.vocab=hf:RUN_DIR
  python -m hhh.eval --config=configs/eval.py:RUN_DIR --config.checkpoint=RUN_DIR --config.data.vocab=hf:RUN_DIR ...
  python -m hhh.sample --config=configs/sample.py:RUN_DIR --config.checkpoint=RUN_DIR --config.data.vocab=hf:RUN_DIR

Conversion streams one parameter at a time from safetensors and the write is bounded (a 1B-parameter model, 4.05 GB in
f32: ~34 s and 6.4-7.1 GB peak, 1.6-1.7x the model, on a 2-core CPU; `python tools/bench_import.py`,
docs/interop.md). --vocab_size pads the embedding with zero rows (an hf: vocabulary's end-of-context token is the id
after the tokenizer's; Pythia's embedding already has spare rows, GPT-2's and Llama's do not).
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hhh.cli.quiet import quiet  # noqa: E402

quiet()  # start-up quieting, before jax and TensorFlow are imported

from absl import flags  # noqa: E402
from hhh import cli  # noqa: E402


def main():
  hf = flags.DEFINE_string("hf", None, "Hugging Face model directory (config.json + safetensors)")
  out = flags.DEFINE_string("out", None, "hhh run directory to write")
  vocab_size = flags.DEFINE_integer("vocab_size", 0, "pad the embedding to this many rows (0: the checkpoint's; "
                                    "at least the hf: vocabulary's size, which includes the end-of-context token)")
  overwrite = flags.DEFINE_boolean("overwrite", False, "replace an earlier hf_import in --out (a training run or any "
                                    "other non-empty directory is always refused)")
  flags.mark_flags_as_required(["hf", "out"])

  def run(_):
    from hhh.hf import importer  # pylint: disable=g-import-not-at-top
    importer.release_freed_memory()
    importer.import_checkpoint(hf.value, out.value, vocab_size=vocab_size.value, overwrite=overwrite.value)

  cli.run(run)


if __name__ == "__main__":
  main()
