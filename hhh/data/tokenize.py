"""Tokenization preprocessors for seqio tasks whose features may be lists of strings (rank 2).

seqio.preprocessors.tokenize encodes scalar strings only (ByteVocabulary's TF encoder needs equal-length strings
in a vector), so comparisons and multiple-choice tasks use this one: rank-1 features become [T] int32,
rank-2 features (a vector of strings) become a ragged [K, None] int32.

`trim_to_sequence_length` then cuts each tokenised feature to what the feature converter can use, BEFORE seqio's
shuffle buffer (Task.get_dataset runs every preprocessor, then shuffles): without it a buffer of 10,000 examples
holds whole records, e.g. ~1,400 repeated copies of one 65,536-character response.
"""
from __future__ import annotations

from typing import Mapping, Optional

import seqio
import tensorflow as tf


def encode_strings(vocab: seqio.Vocabulary, strings: tf.Tensor) -> tf.RaggedTensor:
  """A vector of strings -> ragged [N, None] int32 ids (no EOS)."""
  if isinstance(vocab, seqio.ByteVocabulary):
    parts = tf.strings.bytes_split(strings)
    # one byte per element ([M, 1]; [0, 0] when every string is empty, hence reshape rather than [:, 0])
    flat = tf.reshape(tf.cast(tf.io.decode_raw(parts.flat_values, tf.uint8), tf.int32), [-1]) + 3  # pad/eos/unk first
    return tf.RaggedTensor.from_row_splits(flat, parts.row_splits)
  if isinstance(vocab, seqio.SentencePieceVocabulary):
    out = vocab.tf_tokenizer.tokenize(strings)
    return tf.cast(out, tf.int32)
  if hasattr(vocab, "encode_strings_tf"):  # vocab.HFTokenizerVocabulary: one batched call of the tokenizer
    return tf.cast(vocab.encode_strings_tf(strings), tf.int32)
  return tf.map_fn(lambda s: tf.cast(vocab.encode_tf(s), tf.int32), strings,
                   fn_output_signature=tf.RaggedTensorSpec([None], tf.int32))


def tokenize_features(ds: tf.data.Dataset, output_features: Mapping[str, seqio.Feature]) -> tf.data.Dataset:
  """Encodes every string output feature of rank 1 or 2; appends the vocabulary's EOS where Feature.add_eos."""

  def fn(ex):
    ex = dict(ex)
    for name, feat in output_features.items():
      if name not in ex or ex[name].dtype != tf.string:
        continue
      v = ex[name]
      if v.shape.rank == 0:
        ids = encode_strings(feat.vocabulary, tf.reshape(v, [1]))[0]
        if feat.add_eos:
          ids = tf.concat([ids, [feat.vocabulary.eos_id]], 0)
        ex[name] = ids
      else:
        ids = encode_strings(feat.vocabulary, v)
        if feat.add_eos:
          raise ValueError(f"feature {name}: add_eos is not supported for lists of strings")
        ex[name] = ids
    return ex
  return ds.map(fn, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def split_long_documents(ds: tf.data.Dataset, sequence_length: Optional[Mapping[str, int]] = None,
                         feature: str = "targets") -> tf.data.Dataset:
  """LM pretraining: documents longer than the sequence length are split into L-token pieces (nothing is cut)."""
  if not sequence_length or sequence_length.get(feature) is None:
    return ds
  L = int(sequence_length[feature])

  def pieces(ex):
    t = ex[feature]
    n = tf.size(t, out_type=tf.int64)
    full = n // L
    lengths = tf.concat([tf.fill([full], tf.cast(L, tf.int64)), tf.reshape(n - full * L, [1])], 0)
    lengths = tf.boolean_mask(lengths, lengths > 0)
    rows = tf.RaggedTensor.from_row_lengths(t, lengths)
    return tf.data.Dataset.from_tensor_slices({feature: rows})
  return ds.flat_map(pieces)


# The length key that pipeline.make_dataset passes as `sequence_length` for the unpacked families and imitation
# tasks. It names no task feature, so seqio's own trimming (which keeps the START of features named in
# sequence_length) leaves every feature alone; only `trim_to_sequence_length` reads it.
TRIM_LENGTH_KEY = "tokens"
# Features that keep their END when trimmed (the context: the tokens nearest the response), as the converters
# in hhh/data/features.py keep them; every other tokenised feature keeps its START.
KEEP_END = ("context", "inputs")


def trim_to_sequence_length(ds: tf.data.Dataset, sequence_length: Optional[Mapping[str, int]] = None,
                            output_features: Optional[Mapping[str, seqio.Feature]] = None) -> tf.data.Dataset:
  """Cuts every tokenised output feature to L + 1 tokens, L = sequence_length[TRIM_LENGTH_KEY]: the context (and
  an imitation task's inputs) keeps its LAST L + 1 tokens, responses / choices (each row) / response / targets /
  text their FIRST L + 1. A no-op without that length (tools/show_task.py shows whole records).

  The converters' output is unchanged, bit for bit, truncation counters included (tests/test_data_features.py):
  a sample of length L keeps at most L - 1 response and L - 1 context tokens (imitation: L response tokens and
  L - 1 context tokens; distillation: L text tokens), and each counter asks whether a feature is longer than what
  was kept, which L + 1 tokens still answer. Response/choice rows beyond k/c stay (only their count is used).
  """
  if not sequence_length or sequence_length.get(TRIM_LENGTH_KEY) is None:
    return ds
  keep = int(sequence_length[TRIM_LENGTH_KEY]) + 1
  names = list(output_features or {})

  def fn(ex):
    ex = dict(ex)
    for name in names:
      v = ex.get(name)
      if v is None or not v.dtype.is_integer:
        continue
      if name in KEEP_END:
        ex[name] = v[-keep:]
      elif isinstance(v, tf.RaggedTensor) or v.shape.rank == 2:
        ex[name] = v[:, :keep]
      else:
        ex[name] = v[:keep]
    return ex
  return ds.map(fn, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
