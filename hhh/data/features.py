"""Feature families and their seqio feature converters (docs/contracts.md is the interface).

Task features (what a registered task yields, tokenized, no EOS unless noted) -> model features (fixed shapes):

  lm               targets [T] (EOS appended)                 -> seqio.DecoderFeatureConverter(pack=True) names
                                                                (PackedLMFeatureConverter for "hf:" vocabularies)
  lm (imitation)   inputs [Tc], targets [Tr] (EOS appended)   -> same names; loss weights 0 on the context
  comparison       context [Tc], responses [K, None], scores [K] -> tokens [K, L], response_start, eoc_index,
                                                                     score, valid [K]
  binary           context, response, label []                -> tokens [L], response_start, eoc_index, label, valid
  multiple_choice  context, choices [C, None], targets [C]    -> tokens [C, L], response_start, eoc_index, target,
                                                                     valid [C]
  distill          text [T]                                   -> tokens [L], loss_weights [L]

Truncation rule (a sample is context + response + end-of-context token, length L):
  1. the response keeps at most L - 1 tokens (its END is cut: counted as `truncated_response`);
  2. the context keeps its LAST  L - 1 - len(response) tokens (its BEGINNING is cut: counted as
     `truncated_context`), so the response and the end-of-context token always survive.
  Imitation LM examples use the same rule with the EOS in place of the end-of-context token. Distillation texts
  and plain LM documents keep their first L tokens (counted as `truncated_text`). Responses beyond `k` (choices
  beyond `c`) are dropped and counted as `dropped_responses`; a record with none at all becomes a row whose `valid`
  is all 0, counted as `no_responses` (evaluation drops such rows and reports the count).
The counts travel through the tf.data pipeline as `_stat_*` features; pipeline.make_iterator sums them into
`iterator.stats` and strips them from the batches.

Special ids (hhh/data/vocab/; every id the converters write comes from the vocabulary in use):
  * EOS: appended by hhh/data/tokenize.py (Feature.add_eos: lm targets, imitation targets) as the vocabulary's
    `eos_id` (1 for byte/spm, the tokenizer's EOS for "hf:").
  * end-of-context: `end_id` = vocab.eoc_id(vocab), passed in by pipeline.make_converter.
  * Padding stays 0 whatever the vocabulary's pad id, because it is always masked and never read:
      comparison / multiple_choice / binary `tokens` after eoc_index (the score is read at eoc_index, LM scores
      stop there; attention is causal) and whole padding responses (valid = 0); distill `tokens` beyond the text
      (loss_weights 0); packed LM `decoder_target_tokens` / `decoder_input_tokens` beyond the last document
      (decoder_segment_ids 0, decoder_loss_weights 0); padding rows of a last partial batch (pipeline.py, valid /
      loss weights 0). For "hf:" vocabularies id 0 is a real token (GPT-2's "!"); none of these masks reads tokens.
  * Packed LM documents (plain and imitation): seqio's packer treats id 0 as padding (it drops trailing zeros and
    gives them segment id 0) and its loss weights are `targets != 0`, which is right only for byte/spm (0 never
    occurs in their text). `PackedLMFeatureConverter` (used for "hf:" vocabularies) and `MaskedLMFeatureConverter`
    therefore pack ids + 1 and shift them back; loss weights come from the segment ids. The decoder input in front
    of each document is `start_id` = vocab.lm_start_id(vocab): 0 for byte/spm (seqio's convention, so their
    batches are bit-identical to seqio's), the tokenizer's BOS (else EOS) for "hf:".
"""
from __future__ import annotations

from typing import Mapping

import seqio
import tensorflow as tf

from hhh.data import rows as rows_lib
# The TF-free names live in hhh/data/specs.py (the core imports them from there); re-exported here.
from hhh.data.specs import FAMILIES, STAT_PREFIX, family_spec  # noqa: F401


def build_sample(context: tf.Tensor, response: tf.Tensor, seq_len: int, end_id: int):
  """context + response + [end_id] under the truncation rule (hhh.data.rows), right-padded with 0 to seq_len.

  Returns (tokens [L], response_start, end_index, truncated_context, truncated_response).
  """
  context = tf.cast(context, tf.int32)
  response = tf.cast(response, tf.int32)
  n_ctx = tf.size(context)
  first, keep = rows_lib.truncation(n_ctx, tf.size(response), seq_len, tf.minimum, tf.maximum)
  r = response[:keep]
  c = context[first:]
  toks = tf.concat([c, r, tf.constant([end_id], tf.int32)], 0)
  toks = tf.pad(toks, [[0, seq_len - tf.size(toks)]])
  toks = tf.ensure_shape(toks, [seq_len])
  start = tf.size(c)
  end = start + tf.size(r)
  return (toks, start, end, tf.cast(tf.size(c) < n_ctx, tf.int32),
          tf.cast(tf.size(r) < tf.size(response), tf.int32))


def _ragged_rows(rt: tf.RaggedTensor, k: int):
  """Row i (or an empty row) of a ragged [N, None] tensor for i < k, and the validity of each row."""
  n = rt.nrows(out_type=tf.int32)
  splits = tf.cast(rt.row_splits, tf.int32)
  splits = tf.concat([splits, tf.fill([k + 1], splits[-1])], 0)  # rows i >= n (even with n = 0) read nothing
  flat = rt.flat_values
  rows, valid = [], []
  for i in range(k):
    rows.append(flat[splits[i]:splits[i + 1]])
    valid.append(i < n)
  return rows, valid, tf.maximum(n - k, 0)


class _Converter(seqio.FeatureConverter):
  """Base for the unpacked families: validates the task features, maps one example at a time."""

  TASK_FEATURES: Mapping[str, seqio.FeatureConverter.FeatureSpec] = {}
  MODEL_FEATURES: Mapping[str, seqio.FeatureConverter.FeatureSpec] = {}
  PACKING_FEATURE_DTYPES: Mapping[str, tf.dtypes.DType] = {}

  def __init__(self, end_id: int, **kwargs):
    self._end_id = int(end_id)
    super().__init__(pack=False, apply_length_check=False, **kwargs)

  def __call__(self, ds: tf.data.Dataset, task_feature_lengths: Mapping[str, int]) -> tf.data.Dataset:
    missing = [f for f in self.TASK_FEATURES if f not in ds.element_spec]
    if missing:
      raise ValueError(f"{type(self).__name__}: dataset lacks task features {missing}; has "
                       f"{sorted(ds.element_spec)}")
    return self._convert_features(ds, task_feature_lengths)

  def get_model_feature_lengths(self, task_feature_lengths):
    return dict(task_feature_lengths)


class ComparisonFeatureConverter(_Converter):
  """context + each of up to k ranked responses + end-of-context token -> [k, L] (padding responses valid=0)."""

  TASK_FEATURES = {"context": seqio.FeatureConverter.FeatureSpec(tf.int32),
                   "responses": seqio.FeatureConverter.FeatureSpec(tf.int32, rank=2),
                   "scores": seqio.FeatureConverter.FeatureSpec(tf.float32)}

  def __init__(self, end_id: int, k: int = 2, **kwargs):
    self._k = int(k)
    super().__init__(end_id, **kwargs)

  def _convert_features(self, ds, task_feature_lengths):
    L, k, end = int(task_feature_lengths["tokens"]), self._k, self._end_id

    def convert(ex):
      rows, valid, dropped = _ragged_rows(ex["responses"], k)
      built = [build_sample(ex["context"], r, L, end) for r in rows]
      scores = tf.cast(ex["scores"], tf.float32)
      n = tf.size(scores)
      scores = tf.pad(scores[:k], [[0, tf.maximum(k - n, 0)]])
      v = tf.stack([tf.cast(x, tf.float32) for x in valid])
      vi = tf.cast(v, tf.int32)
      return {
          "tokens": tf.stack([b[0] for b in built]) * vi[:, None],
          "response_start": tf.stack([b[1] for b in built]) * vi,
          "eoc_index": tf.stack([b[2] for b in built]) * vi,
          "score": tf.ensure_shape(scores, [k]) * v,
          "valid": v,
          STAT_PREFIX + "truncated_context": tf.reduce_max(tf.stack([b[3] for b in built]) * vi),
          STAT_PREFIX + "truncated_response": tf.reduce_max(tf.stack([b[4] for b in built]) * vi),
          STAT_PREFIX + "dropped_responses": dropped,
          # a record with no response/choice at all (e.g. an empty LAMBADA passage) stays a row with valid = 0
          STAT_PREFIX + "no_responses": tf.cast(tf.reduce_sum(vi) == 0, tf.int32),
      }
    return ds.map(convert, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


class MultipleChoiceFeatureConverter(ComparisonFeatureConverter):
  """Like a comparison with C choices; `targets` (1 for a correct choice) instead of rank scores."""

  TASK_FEATURES = {"context": seqio.FeatureConverter.FeatureSpec(tf.int32),
                   "choices": seqio.FeatureConverter.FeatureSpec(tf.int32, rank=2),
                   "targets": seqio.FeatureConverter.FeatureSpec(tf.float32)}

  def _convert_features(self, ds, task_feature_lengths):
    renamed = ds.map(lambda ex: {"context": ex["context"], "responses": ex["choices"], "scores": ex["targets"]})
    out = super()._convert_features(renamed, task_feature_lengths)

    def rename(ex):
      ex = dict(ex)
      ex["target"] = ex.pop("score")
      return ex
    return out.map(rename)


class BinaryFeatureConverter(_Converter):
  TASK_FEATURES = {"context": seqio.FeatureConverter.FeatureSpec(tf.int32),
                   "response": seqio.FeatureConverter.FeatureSpec(tf.int32),
                   "label": seqio.FeatureConverter.FeatureSpec(tf.float32, rank=0)}

  def _convert_features(self, ds, task_feature_lengths):
    L, end = int(task_feature_lengths["tokens"]), self._end_id

    def convert(ex):
      toks, start, stop, tc, tr = build_sample(ex["context"], ex["response"], L, end)
      return {"tokens": toks, "response_start": start, "eoc_index": stop,
              "label": tf.cast(ex["label"], tf.float32), "valid": tf.constant(1.0),
              STAT_PREFIX + "truncated_context": tc, STAT_PREFIX + "truncated_response": tr}
    return ds.map(convert, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


class DistillFeatureConverter(_Converter):
  """The text X, first L tokens; loss_weights = 1 at positions whose next token is in X (0..n-2)."""

  TASK_FEATURES = {"text": seqio.FeatureConverter.FeatureSpec(tf.int32)}

  def _convert_features(self, ds, task_feature_lengths):
    L = int(task_feature_lengths["tokens"])

    def convert(ex):
      t = tf.cast(ex["text"], tf.int32)
      x = t[:L]
      n = tf.size(x)
      toks = tf.ensure_shape(tf.pad(x, [[0, L - n]]), [L])
      w = tf.cast(tf.range(L) < n - 1, tf.float32)
      return {"tokens": toks, "loss_weights": w,
              STAT_PREFIX + "truncated_text": tf.cast(tf.size(t) > L, tf.int32)}
    return ds.map(convert, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _unshift_packed(shifted: tf.Tensor, seg: tf.Tensor, start_id: int):
  """Packed ids + 1 -> (targets, decoder inputs, real-token mask as int32); padding (segment id 0) is 0 in both.

  The decoder input is the previous token of the same document and `start_id` in front of each document."""
  real = tf.cast(seg > 0, tf.int32)
  tgt = (shifted - 1) * real
  inp = seqio.utils.make_autoregressive_inputs(tgt, sequence_id=seg, bos_id=start_id) * real
  return tgt, inp, real


class PackedLMFeatureConverter:
  """Plain LM: seqio.DecoderFeatureConverter(pack=True) for vocabularies in which id 0 is a text token ("hf:").

  Packs ids + 1 with seqio's converter and shifts them back (see the module docstring): the same model features
  (decoder_target_tokens, decoder_input_tokens, decoder_loss_weights, decoder_segment_ids, decoder_positions) with
  loss weights = segment ids > 0 and `start_id` as the decoder input in front of each document. For byte/spm
  (start_id 0) the output equals seqio's bit for bit (tests/test_hf_vocab.py); the pipeline uses seqio's converter
  directly for them."""

  def __init__(self, start_id: int = 0):
    self._start_id = int(start_id)
    self._seqio = seqio.DecoderFeatureConverter(pack=True, apply_length_check=False)

  def __call__(self, ds: tf.data.Dataset, task_feature_lengths: Mapping[str, int]) -> tf.data.Dataset:
    if "targets" not in ds.element_spec:
      raise ValueError(f"PackedLMFeatureConverter: dataset lacks task feature 'targets'; has {sorted(ds.element_spec)}")
    ds = ds.map(lambda ex: {**ex, "targets": tf.cast(ex["targets"], tf.int32) + 1},
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = self._seqio(ds, task_feature_lengths)
    start = self._start_id

    def fix(ex):
      tgt, inp, real = _unshift_packed(ex["decoder_target_tokens"], ex["decoder_segment_ids"], start)
      return {**ex, "decoder_target_tokens": tgt, "decoder_input_tokens": inp, "decoder_loss_weights": real}
    return ds.map(fix, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


class MaskedLMFeatureConverter(seqio.FeatureConverter):
  """Imitation learning: context ("inputs") + response ("targets") packed like seqio's decoder LM, with
  decoder_loss_weights 0 on the context. The context is left-truncated so the response + EOS survive."""

  TASK_FEATURES = {"inputs": seqio.FeatureConverter.FeatureSpec(tf.int32),
                   "targets": seqio.FeatureConverter.FeatureSpec(tf.int32)}
  MODEL_FEATURES = {"decoder_target_tokens": seqio.FeatureConverter.FeatureSpec(tf.int32),
                    "decoder_input_tokens": seqio.FeatureConverter.FeatureSpec(tf.int32),
                    "decoder_loss_weights": seqio.FeatureConverter.FeatureSpec(tf.int32)}
  PACKING_FEATURE_DTYPES = {"decoder_segment_ids": tf.int32, "decoder_positions": tf.int32}

  def __init__(self, start_id: int = 0, **kwargs):
    self._start_id = int(start_id)
    super().__init__(pack=True, apply_length_check=False, **kwargs)

  def __call__(self, ds, task_feature_lengths):
    return self._convert_features(ds, task_feature_lengths)

  def _convert_features(self, ds, task_feature_lengths):
    L = int(task_feature_lengths["targets"])

    def join(ex):
      ctx, resp = tf.cast(ex["inputs"], tf.int32), tf.cast(ex["targets"], tf.int32)
      r = resp[:L]
      c = ctx[tf.maximum(tf.size(ctx) - (L - tf.size(r)), 0):]
      # ids + 1: the packer treats 0 as padding, and 0 is a text token in some vocabularies ("hf:").
      return {"targets": tf.concat([c, r], 0) + 1,
              # The packer treats 0 as padding and drops it, so the mask travels as 1 (context) / 2 (response).
              "mask": tf.concat([tf.ones_like(c), 2 * tf.ones_like(r)], 0),
              STAT_PREFIX + "truncated_context": tf.cast(tf.size(c) < tf.size(ctx), tf.int32),
              STAT_PREFIX + "truncated_response": tf.cast(tf.size(r) < tf.size(resp), tf.int32)}
    ds = ds.map(join, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    # Each per-example statistic rides through the packer as a length-1 feature, so the sum of a packed row is
    # the number of its documents that were truncated (a row never holds more than L documents).
    stats = sorted(k for k in ds.element_spec if k.startswith(STAT_PREFIX))
    ds = ds.map(lambda ex: {k: (tf.reshape(v, [1]) + 1 if k in stats else v) for k, v in ex.items()})
    lengths = {"targets": L, "mask": L, **{k: L for k in stats}}
    ds = seqio.utils.trim_and_pack_dataset(ds, lengths, use_custom_ops=False)

    start = self._start_id

    def finish(ex):
      seg = ex["targets_segment_ids"]
      tgt, inp, real = _unshift_packed(ex["targets"], seg, start)
      out = {"decoder_target_tokens": tgt,
             "decoder_input_tokens": inp,
             "decoder_loss_weights": tf.cast(tf.equal(ex["mask"], 2), tf.int32) * real,
             "decoder_segment_ids": seg, "decoder_positions": ex["targets_positions"]}
      for k in stats:
        out[k] = tf.reduce_sum(tf.maximum(ex[k] - 1, 0))
      return out
    return ds.map(finish, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

  def get_model_feature_lengths(self, task_feature_lengths):
    L = task_feature_lengths["targets"]
    return {k: L for k in list(self.MODEL_FEATURES) + list(self.PACKING_FEATURE_DTYPES)}
