"""seqio task and mixture registry. Importing this module registers every task with the byte vocabulary.

Tasks are registered per vocabulary: under their plain name for "byte", and on demand (`ensure_task(name, vocab)`)
as "{name}@{vocab-hash}" for any other vocabulary string, so the vocabulary stays a config choice.

Each task has a KIND (the feature family it feeds): lm, imitation (lm family, loss on responses only),
comparison, binary, multiple_choice, distill. See docs/data.md for the list.
"""
from __future__ import annotations

import functools
import zlib
from typing import Callable, Dict, List, Optional

import numpy as np
import seqio
import tensorflow as tf

from hhh.data import lab
from hhh.data import tokenize as tok
from hhh.data import vocab as vocab_lib

DEFAULT_VOCAB = "byte"
# name -> (kind, builder(registered_name, vocab_name))
_TASKS: Dict[str, tuple] = {}
# name -> (kind, [(task name, rate)])
_MIXTURES: Dict[str, tuple] = {}

KIND_TO_FAMILY = {"lm": "lm", "imitation": "lm", "comparison": "comparison", "binary": "binary",
                  "multiple_choice": "multiple_choice", "distill": "distill"}


def output_features(kind: str, vocab_name: str) -> Dict[str, seqio.Feature]:
  v = vocab_lib.get_vocabulary(vocab_name)
  if kind == "lm":
    return {"targets": seqio.Feature(v, add_eos=True)}
  if kind == "imitation":
    return {"inputs": seqio.Feature(v, add_eos=False), "targets": seqio.Feature(v, add_eos=True)}
  if kind == "comparison":
    return {"context": seqio.Feature(v, add_eos=False), "responses": seqio.Feature(v, add_eos=False, rank=2)}
  if kind == "binary":
    return {"context": seqio.Feature(v, add_eos=False), "response": seqio.Feature(v, add_eos=False)}
  if kind == "multiple_choice":
    return {"context": seqio.Feature(v, add_eos=False), "choices": seqio.Feature(v, add_eos=False, rank=2)}
  if kind == "distill":
    return {"text": seqio.Feature(v, add_eos=False)}
  raise ValueError(f"unknown task kind {kind!r}")


def preprocessors(kind: str) -> List[Callable]:
  pre = [tok.tokenize_features]
  if kind == "lm":
    pre.append(tok.split_long_documents)
  return pre


def records_to_dataset(kind: str, records: List[dict]) -> tf.data.Dataset:
  """Python records (strings, lists of strings, floats) -> tf.data with the raw (untokenized) task features."""
  if not records:
    raise ValueError("no records")
  cols = {k: [r[k] for r in records] for k in records[0]}
  tensors = {}
  for k, col in cols.items():
    if isinstance(col[0], (list, tuple)):
      tensors[k] = tf.ragged.constant(col, dtype=tf.float32 if isinstance(col[0][0], float) else tf.string)
    elif isinstance(col[0], float):
      tensors[k] = tf.constant(col, tf.float32)
    else:
      tensors[k] = tf.constant(col, tf.string)
  return tf.data.Dataset.from_tensor_slices(tensors)


def function_source(records_fn: Callable[[str], List[dict]], kind: str, splits) -> seqio.FunctionDataSource:
  """A seqio source over in-memory records; with a seed, the source order is a full seeded permutation."""

  def dataset_fn(split, shuffle_files, seed=None):
    recs = records_fn(split)
    if shuffle_files and seed is not None:
      order = np.random.default_rng(int(seed)).permutation(len(recs))
      recs = [recs[i] for i in order]
    return records_to_dataset(kind, recs)
  return seqio.FunctionDataSource(dataset_fn, splits=list(splits))


def define_task(name: str, kind: str, source_fn: Callable[[str], seqio.DataSource],
                extra_preprocessors=(), shuffle_buffer_size: int = 10_000):
  """Declares a task; it is registered for the byte vocabulary now and for others on demand."""

  def build(registered: str, vocab_name: str):
    seqio.TaskRegistry.add(
        registered, source=source_fn(vocab_name), preprocessors=list(extra_preprocessors) + preprocessors(kind),
        output_features=output_features(kind, vocab_name), shuffle_buffer_size=shuffle_buffer_size)
  _TASKS[name] = (kind, build)
  if name in seqio.TaskRegistry.names():
    seqio.TaskRegistry.remove(name)
  build(name, DEFAULT_VOCAB)


def define_mixture(name: str, tasks_and_rates):
  kinds = {_TASKS[t][0] for t, _ in tasks_and_rates}
  fams = {KIND_TO_FAMILY[k] for k in kinds}
  if len(fams) != 1:
    raise ValueError(f"mixture {name}: tasks feed different families {sorted(fams)}")
  kind = sorted(kinds)[0]
  _MIXTURES[name] = (kind, list(tasks_and_rates))
  if name in seqio.MixtureRegistry.names():
    seqio.MixtureRegistry.remove(name)
  seqio.MixtureRegistry.add(name, list(tasks_and_rates))


def kind_of(name: str) -> str:
  base = name.split("@")[0]
  if base in _TASKS:
    return _TASKS[base][0]
  if base in _MIXTURES:
    return _MIXTURES[base][0]
  raise ValueError(f"unknown task or mixture {name!r}; registered: {sorted(list(_TASKS) + list(_MIXTURES))}")


def family_of(name: str) -> str:
  return KIND_TO_FAMILY[kind_of(name)]


def names() -> Dict[str, List[str]]:
  return {"tasks": sorted(_TASKS), "mixtures": sorted(_MIXTURES)}


def ensure_task(name: str, vocab_name: str = DEFAULT_VOCAB) -> str:
  """The registered seqio name of task/mixture `name` with vocabulary `vocab_name` (registering it if needed)."""
  kind_of(name)
  if vocab_name == DEFAULT_VOCAB:
    return name
  suffix = f"@{zlib.crc32(vocab_name.encode()):08x}"
  registered = name + suffix
  if name in _TASKS:
    if registered not in seqio.TaskRegistry.names():
      _TASKS[name][1](registered, vocab_name)
  else:
    if registered not in seqio.MixtureRegistry.names():
      subs = [(ensure_task(t, vocab_name), r) for t, r in _MIXTURES[name][1]]
      seqio.MixtureRegistry.add(registered, subs)
  return registered


# -----------------------------------------------------------------------------------------------------------------
# The embedded laboratory (hhh/data/lab.py): always available, no downloads.

LAB_SPLITS = lab.SPLITS


def _lab_source(records_fn):
  return lambda vocab_name: function_source(records_fn, "", LAB_SPLITS)


def _lab_lm(split):
  return [{"targets": d} for d in lab.lm_documents(split)]


def _lab_imitation(split):
  return [{"id": i, "inputs": c, "targets": r} for i, c, r in lab.imitation_pairs(split)]


def _cmp_record(c: lab.Comparison) -> dict:
  return {"id": c.id, "context": c.context, "responses": list(c.responses), "scores": [float(s) for s in c.scores]}


def _lab_compare(split, family=None):
  return [_cmp_record(c) for c in lab.comparisons(split) if family is None or c.family == family]


def _lab_compare_pair(split):
  return [_cmp_record(c) for c in lab.pairs(split)]


def _lab_binary(split):
  return [{"id": i, "context": c, "response": r, "label": float(y)} for i, c, r, y in lab.binary_samples(split)]


def _lab_distill(split):
  return [{"id": i, "text": t} for i, t in lab.distill_texts(split)]


define_task("lab_lm", "lm", _lab_source(_lab_lm))
define_task("lab_imitation", "imitation", _lab_source(_lab_imitation))
define_task("lab_compare", "comparison", _lab_source(_lab_compare))
for _fam in lab.FAMILIES:
  define_task(f"lab_compare_{_fam}", "comparison", _lab_source(functools.partial(_lab_compare, family=_fam)))
define_task("lab_compare_pair", "comparison", _lab_source(_lab_compare_pair))
define_task("lab_binary", "binary", _lab_source(_lab_binary))
define_task("lab_distill", "distill", _lab_source(_lab_distill))
