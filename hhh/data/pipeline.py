"""make_iterator: a registered task/mixture -> per-host, fixed-shape numpy batches of one feature family.

Determinism and exact resume: the whole tf.data graph is deterministic for a given seed (seeded source
permutation, seeded shuffle buffer, deterministic maps, packing and mixing), so batch n of a run is a function of
(task, split, seed, shard, shapes) alone. `start_batch=n` skips the first n BATCHES of that same stream with
`tf.data.Dataset.skip` after batching, which yields exactly the batches an uninterrupted run would have seen from
batch n on. The cost is re-running the input pipeline (not the model) over the skipped batches, which is cheap at
this scale (see tools/bench_data.py); a checkpoint therefore only needs to store the number of batches consumed.

Per-host input: host `shard_index` of `num_shards` reads only its shard (seqio.ShardInfo): sources that can shard
their files do so, in-memory sources keep every num_shards-th example. Each host's batch_size is its local batch;
the global batch is the concatenation of the hosts' local batches.

Exit: a tf.data iterator whose graph calls back into Python (an "hf:" vocabulary tokenises through
tf.numpy_function) can deadlock the interpreter's shutdown when it is still alive then (its prefetch threads wait
for the GIL while the finalising main thread waits for them). Every BatchIterator still open at exit is therefore
closed by an atexit hook, before the interpreter finalises; `iterator.close()` does it earlier.
"""
from __future__ import annotations

import atexit
import collections
import gc
import weakref
from typing import Dict

import numpy as np

from hhh.data import vocab as vocab_lib
from hhh.data.specs import STAT_PREFIX, family_spec  # noqa: F401  (re-exported)

_DEFAULT_K = 2
_DEFAULT_C = 4


_OPEN = weakref.WeakSet()  # BatchIterators not yet closed (see the module docstring: Exit)


@atexit.register
def _close_open_iterators():
  for it in list(_OPEN):
    it.close()
  gc.collect()


class BatchIterator:
  """Iterator of dicts of numpy arrays; `stats` counts examples, padding rows and truncations so far."""

  def __init__(self, ds, family: str, batch_size: int, spec, start_batch: int):
    self._it = ds.as_numpy_iterator()
    _OPEN.add(self)
    self.family = family
    self.batch_size = batch_size
    self.spec = spec
    self.batches = start_batch  # batches consumed in this stream, including skipped ones
    self.stats = collections.Counter()

  def __iter__(self):
    return self

  def close(self) -> None:
    """Releases the tf.data iterator (and its threads); next() then raises StopIteration."""
    self._it = None
    _OPEN.discard(self)

  def __next__(self) -> Dict[str, np.ndarray]:
    if self._it is None:
      raise StopIteration
    raw = next(self._it)
    out = {}
    n = None
    for k, v in raw.items():
      if k.startswith(STAT_PREFIX):
        self.stats[k[len(STAT_PREFIX):]] += int(np.sum(v))
        continue
      out[k] = v
      n = v.shape[0]
    self.stats["examples"] += n if self.family != "lm" else 0
    self.stats["rows"] += n
    if n < self.batch_size:  # last partial batch of a finite stream: pad rows (valid = 0 / loss weights = 0)
      self.stats["padding_rows"] += self.batch_size - n
      out = {k: np.concatenate([v, np.zeros((self.batch_size - n,) + v.shape[1:], v.dtype)]) for k, v in out.items()}
    out = {k: np.asarray(out[k], dtype=dt) for k, (shape, dt) in self.spec.items()}
    self.batches += 1
    return out


def make_converter(family: str, kind: str, vocab, k: int, c: int):
  import seqio
  from hhh.data import features as F
  end = vocab_lib.eoc_id(vocab)
  if family == "lm":
    start = vocab_lib.lm_start_id(vocab)
    if kind == "imitation":
      return F.MaskedLMFeatureConverter(start_id=start)
    if vocab_lib.zero_is_text(vocab):  # "hf:": seqio's packing would take id 0 for padding
      return F.PackedLMFeatureConverter(start_id=start)
    return seqio.DecoderFeatureConverter(pack=True, apply_length_check=False)
  if family == "comparison":
    return F.ComparisonFeatureConverter(end, k=k)
  if family == "binary":
    return F.BinaryFeatureConverter(end)
  if family == "multiple_choice":
    return F.MultipleChoiceFeatureConverter(end, k=c)
  if family == "distill":
    return F.DistillFeatureConverter(end)
  raise ValueError(family)


def make_dataset(task: str, *, split: str, family: str, seq_len: int, batch_size: int, vocab: str, seed: int,
                 shuffle: bool, repeat: bool, shard_index: int = 0, num_shards: int = 1, start_batch: int = 0,
                 k: int = _DEFAULT_K, c: int = _DEFAULT_C):
  """The batched tf.data.Dataset behind make_iterator (features still include the `_stat_*` counters)."""
  import seqio
  import tensorflow as tf
  from hhh.data import tasks
  from hhh.data import tokenize as tok

  kind = tasks.kind_of(task)
  if tasks.KIND_TO_FAMILY[kind] != family:
    raise ValueError(f"task {task!r} feeds family {tasks.KIND_TO_FAMILY[kind]!r}, not {family!r}")
  if not 0 <= shard_index < num_shards:
    raise ValueError(f"shard_index {shard_index} not in [0, {num_shards})")
  name = tasks.ensure_task(task, vocab)
  provider = seqio.get_mixture_or_task(name)
  voc = vocab_lib.get_vocabulary(vocab)
  shard = seqio.ShardInfo(index=shard_index, num_shards=num_shards) if num_shards > 1 else None
  # Cut records to length before seqio's shuffle buffer (Task.get_dataset tokenises, then shuffles): plain LM
  # documents are split into seq_len pieces and trimmed by seqio; every other kind is cut by
  # tokenize.trim_to_sequence_length (context keeps its end, responses their start) to what the converter uses.
  lengths = {"targets": seq_len} if kind == "lm" else {tok.TRIM_LENGTH_KEY: seq_len}
  ds = provider.get_dataset(sequence_length=lengths, split=split, shuffle=shuffle, seed=seed, shard_info=shard,
                            num_epochs=None if repeat else 1, use_cached=False)
  conv = make_converter(family, kind, voc, k, c)
  if family == "lm":
    feat_lengths = {"targets": seq_len}
  else:
    feat_lengths = {"tokens": seq_len}
  ds = conv(ds, feat_lengths)
  if family == "lm":
    ds = ds.map(lambda ex: {**ex, "decoder_loss_weights": tf.cast(ex["decoder_loss_weights"], tf.float32)})
  ds = ds.batch(batch_size, drop_remainder=repeat)
  if start_batch:
    ds = ds.skip(start_batch)
  opts = tf.data.Options()
  opts.deterministic = True
  ds = ds.with_options(opts)
  return ds.prefetch(2)


def make_iterator(task: str, *, split: str, family: str, seq_len: int, batch_size: int, vocab: str, seed: int,
                  shuffle: bool, repeat: bool, shard_index: int = 0, num_shards: int = 1, start_batch: int = 0,
                  k: int = _DEFAULT_K, c: int = _DEFAULT_C) -> BatchIterator:
  """Yields dicts of numpy arrays of `family` (docs/contracts.md) for this host's shard of `task`.

  batch_size is per host. k (comparison responses) and c (multiple-choice choices) pad the second axis.
  A finite stream (repeat=False) pads its last batch with rows whose valid / loss weights are 0.
  """
  ds = make_dataset(task, split=split, family=family, seq_len=seq_len, batch_size=batch_size, vocab=vocab,
                    seed=seed, shuffle=shuffle, repeat=repeat, shard_index=shard_index, num_shards=num_shards,
                    start_batch=start_batch, k=k, c=c)
  spec = family_spec(family, batch_size, seq_len, k=k, c=c)
  return BatchIterator(ds, family, batch_size, {n: (s, dt) for n, (s, dt) in spec.items()}, start_batch)
