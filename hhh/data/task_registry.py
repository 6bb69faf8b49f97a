"""How a seqio task of this project is defined and registered (the mechanics behind hhh.data.tasks): output features
and preprocessors per task kind, in-memory record sources, per-vocabulary registration (`ensure_task`), mixtures."""
from __future__ import annotations

import zlib
from typing import Callable, Dict, List

import numpy as np
import seqio
import tensorflow as tf

from hhh.data import tokenize as tok
from hhh.core.errors import ConfigError, DataError
from hhh.data import vocab as vocab_lib
from hhh.data.specs import KIND_TO_FAMILY

DEFAULT_VOCAB = "byte"
# name -> (kind, builder(registered_name, vocab_name))
_TASKS: Dict[str, tuple] = {}
# name -> (kind, [(task name, rate)])
_MIXTURES: Dict[str, tuple] = {}


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
    pre.append(tok.split_long_documents)  # then seqio trims the pieces to sequence_length["targets"]
  else:
    pre.append(tok.trim_to_sequence_length)  # every other kind: cut to sequence_length["tokens"] + 1
  return pre


def records_to_dataset(kind: str, records: List[dict]) -> tf.data.Dataset:
  """Python records (strings, lists of strings, floats) -> tf.data with the raw (untokenized) task features."""
  if not records:
    raise DataError("no records")
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


def function_source(records_fn: Callable[[str], List[dict]], kind: str, splits,
                    name: str = "") -> seqio.FunctionDataSource:
  """A seqio source over in-memory records; with a seed, the source order is a full seeded permutation."""

  def dataset_fn(split, shuffle_files, seed=None):
    recs = records_fn(split)
    if not recs:
      task = name or "this task"
      raise DataError(f"{task}, split {split!r}: no records (the files are empty, or every record was excluded: "
                      f"`python tools/show_task.py {name or 'TASK'} --split={split} --count` lists the exclusions)")
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
  base = name.split("#")[0]
  if base in _TASKS:
    return _TASKS[base][0]
  if base in _MIXTURES:
    return _MIXTURES[base][0]
  raise ConfigError(f"unknown task or mixture {name!r}; registered: {sorted(list(_TASKS) + list(_MIXTURES))}")


def family_of(name: str) -> str:
  return KIND_TO_FAMILY[kind_of(name)]


def names() -> Dict[str, List[str]]:
  return {"tasks": sorted(_TASKS), "mixtures": sorted(_MIXTURES)}


def ensure_task(name: str, vocab_name: str = DEFAULT_VOCAB) -> str:
  """The registered seqio name of task/mixture `name` with vocabulary `vocab_name` (registering it if needed)."""
  kind_of(name)
  if vocab_name == DEFAULT_VOCAB:
    return name
  suffix = f"#{zlib.crc32(vocab_name.encode()):08x}"
  registered = name + suffix
  if name in _TASKS:
    if registered not in seqio.TaskRegistry.names():
      _TASKS[name][1](registered, vocab_name)
  else:
    if registered not in seqio.MixtureRegistry.names():
      subs = [(ensure_task(t, vocab_name), r) for t, r in _MIXTURES[name][1]]
      seqio.MixtureRegistry.add(registered, subs)
  return registered


def mixture_tasks(name: str) -> List[str]:
  """The tasks of mixture `name` ([name] for a task)."""
  base = name.split("#")[0]
  return [t for t, _ in _MIXTURES[base][1]] if base in _MIXTURES else [base]


def forget_task(name: str) -> None:
  """Removes a task defined with define_task (tests that define temporary tasks)."""
  _TASKS.pop(name, None)
  if name in seqio.TaskRegistry.names():
    seqio.TaskRegistry.remove(name)
