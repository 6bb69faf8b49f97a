"""Export an hhh run to Hugging Face format (config.json + model.safetensors + tokenizer files; docs/interop.md).

  python tools/hf_export.py --run=RUN_DIR --out=DIR

The run's architecture (RUN_DIR/config.json `model`) must be one transformers knows: a model imported with
tools/hf_import.py, or trained from one. An LM becomes *ForCausalLM; a preference or binary model (a score head)
becomes *ForSequenceClassification with num_labels 1, which reads its score at the last non-padding token: end the
input with the end-of-context token, as hhh does, and the score equals hhh's (the score head's bias is folded into the
final LayerNorm's bias; an RMSNorm model, which cannot absorb it, records it as `hhh_score_bias` in config.json).
Rows added to the embedding at import and never trained are trimmed, so import -> export returns the same tensors.
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
  run_dir = flags.DEFINE_string("run", None, "hhh run directory (a training run or an import)")
  out = flags.DEFINE_string("out", None, "directory for config.json and model.safetensors")
  flags.mark_flags_as_required(["run", "out"])

  def run(_):
    from hhh.hf import exporter  # pylint: disable=g-import-not-at-top
    exporter.export_checkpoint(run_dir.value, out.value)

  cli.run(run)


if __name__ == "__main__":
  main()
