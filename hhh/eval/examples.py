"""Evaluation sets as whole numpy arrays, read once through the data pipeline (hhh.data.pipeline).

Every evaluation set is small (221 HHH comparisons, 299 TruthfulQA questions, a few thousand benchmark questions),
so each host reads all of it (no per-host sharding) in the source order (shuffle off), and the scorer places rows
onto the mesh. Row i is record i of the task's parse, which gives every row its id (and the HHH subset).
"""
from __future__ import annotations

import dataclasses
from typing import List, Optional

import numpy as np


@dataclasses.dataclass
class Examples:
  task: str
  tokens: np.ndarray  # [N, K, L]
  response_start: np.ndarray  # [N, K]
  eoc_index: np.ndarray  # [N, K]
  label: np.ndarray  # [N, K] rank score (comparison) or target (multiple choice)
  valid: np.ndarray  # [N, K]
  ids: Optional[List[str]]
  stats: dict

  def __len__(self):
    return int(self.tokens.shape[0])

  def take(self, idx) -> "Examples":
    idx = np.asarray(idx)
    ids = None if self.ids is None else [self.ids[i] for i in idx]
    return Examples(self.task, self.tokens[idx], self.response_start[idx], self.eoc_index[idx], self.label[idx],
                    self.valid[idx], ids, dict(self.stats))


def record_ids(task: str, split: str) -> Optional[List[str]]:
  """Ids of the task's records in source order, when the task has them (file tasks and the lab's comparisons)."""
  from hhh.data import lab_corpus, tasks  # pylint: disable=g-import-not-at-top
  base = task.split("#")[0]
  if tasks.has_file_parser(base):
    return [r["id"] for r in tasks.parsed(base, split).records]
  if base == "tax_lab_lambada":
    return [r["id"] for r in tasks.lab_last_word(split)]
  if base == "lab_compare" or base.startswith("lab_compare_") and base[len("lab_compare_"):] in lab_corpus.FAMILIES:
    fam = None if base == "lab_compare" else base[len("lab_compare_"):]
    return [c.id for c in lab_corpus.comparisons(split) if fam is None or c.family == fam]
  return None


def load(task: str, *, split: str = "test", seq_len: int, k: int, vocab: str = "byte", batch_size: int = 64,
         max_examples: int = 0) -> Examples:
  """Reads a comparison or multiple-choice task into arrays (padding rows removed). k pads responses/choices."""
  from hhh.data import pipeline, tasks  # pylint: disable=g-import-not-at-top
  family = tasks.family_of(task)
  if family not in ("comparison", "multiple_choice"):
    raise ValueError(f"evaluation task {task!r} feeds family {family!r}; expected comparison or multiple_choice")
  it = pipeline.make_iterator(task, split=split, family=family, seq_len=seq_len, batch_size=batch_size,
                              vocab=vocab, seed=0, shuffle=False, repeat=False, k=k, c=k)
  parts = []
  n = 0
  for b in it:
    parts.append(b)
    n += b["tokens"].shape[0]
    if max_examples and n >= max_examples:
      break
  cat = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
  keep = cat["valid"].sum(-1) > 0
  if max_examples:
    keep &= np.arange(len(keep)) < max_examples
  label = cat["score"] if family == "comparison" else cat["target"]
  ids = record_ids(task, split)
  n_rows = int(keep.sum())
  if ids is not None:
    if max_examples:
      ids = ids[:max_examples]
    if len(ids) != n_rows:
      raise RuntimeError(f"{task}/{split}: {n_rows} rows but {len(ids)} record ids; source order assumption broken")
  return Examples(task, cat["tokens"][keep], cat["response_start"][keep], cat["eoc_index"][keep], label[keep],
                  cat["valid"][keep], ids, dict(it.stats))
