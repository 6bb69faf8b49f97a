"""The feature families' shapes and the data floor's other constants, importable WITHOUT TensorFlow or seqio.

The model, the objectives, the trainer step, AOT compilation (hhh/train/aot.py) and tools/bench.py only need to know
what a batch of a family looks like; they import it from here so that they run on a machine without
TensorFlow/seqio (tests/test_core_imports.py). The tf.data pipeline (hhh.data.features / pipeline / tasks) builds
batches of exactly these shapes and re-exports these names. docs/contracts.md describes every field.
"""
from __future__ import annotations

from typing import Dict, Tuple

import numpy as np

FAMILIES = ("lm", "comparison", "binary", "multiple_choice", "distill")
# Task kinds (what a registered task yields) -> the feature family they feed.
KIND_TO_FAMILY = {"lm": "lm", "imitation": "lm", "comparison": "comparison", "binary": "binary",
                  "multiple_choice": "multiple_choice", "distill": "distill"}
# Per-example counters (truncations, dropped responses, ...) travel through tf.data as features with this prefix;
# pipeline.BatchIterator sums them into `iterator.stats` and strips them from the batches.
STAT_PREFIX = "_stat_"


def family_spec(family: str, batch_size: int, seq_len: int, k: int = 2, c: int = 4
                ) -> Dict[str, Tuple[Tuple[int, ...], np.dtype]]:
  """{feature: (shape, dtype)} of one batch of `family`, without reading data (for jax.ShapeDtypeStruct)."""
  B, L = batch_size, seq_len
  i32, f32 = np.dtype("int32"), np.dtype("float32")
  if family == "lm":
    return {"decoder_input_tokens": ((B, L), i32), "decoder_target_tokens": ((B, L), i32),
            "decoder_loss_weights": ((B, L), f32), "decoder_segment_ids": ((B, L), i32),
            "decoder_positions": ((B, L), i32)}
  if family == "comparison":
    return {"tokens": ((B, k, L), i32), "response_start": ((B, k), i32), "eoc_index": ((B, k), i32),
            "score": ((B, k), f32), "valid": ((B, k), f32)}
  if family == "binary":
    return {"tokens": ((B, L), i32), "response_start": ((B,), i32), "eoc_index": ((B,), i32),
            "label": ((B,), f32), "valid": ((B,), f32)}
  if family == "multiple_choice":
    return {"tokens": ((B, c, L), i32), "response_start": ((B, c), i32), "eoc_index": ((B, c), i32),
            "target": ((B, c), f32), "valid": ((B, c), f32)}
  if family == "distill":
    return {"tokens": ((B, L), i32), "loss_weights": ((B, L), f32)}
  raise ValueError(f"unknown feature family {family!r}; expected one of {FAMILIES}")


def tokens_per_example(family: str, seq_len: int, k: int = 2, c: int = 4) -> int:
  """Tokens the model reads per example of `family` (an LM sequence; all K responses of a comparison; all C choices):
  the size of one example's token feature in `family_spec`."""
  spec = family_spec(family, 1, seq_len, k=k, c=c)
  shape = spec["decoder_input_tokens" if family == "lm" else "tokens"][0]
  return int(np.prod(shape))
