"""The embedded laboratory's tasks (hhh/data/lab_corpus.py): always available, no downloads."""
from __future__ import annotations

import functools
from typing import List

from hhh.data import lab_corpus
from hhh.data import sources
from hhh.data.task_registry import define_task, function_source


LAB_SPLITS = lab_corpus.SPLITS


def _lab_source(records_fn):
  return lambda vocab_name: function_source(records_fn, "", LAB_SPLITS)


def _lab_lm(split):
  return [{"targets": d} for d in lab_corpus.lm_documents(split)]


def _lab_imitation(split):
  return [{"id": i, "inputs": c, "targets": r} for i, c, r in lab_corpus.imitation_pairs(split)]


def _cmp_record(c: lab_corpus.Comparison) -> dict:
  return {"id": c.id, "context": c.context, "responses": list(c.responses), "scores": [float(s) for s in c.scores]}


def _lab_compare(split, family=None):
  return [_cmp_record(c) for c in lab_corpus.comparisons(split) if family is None or c.family == family]


def _lab_compare_pair(split):
  return [_cmp_record(c) for c in lab_corpus.pairs(split)]


def _lab_binary(split):
  return [{"id": i, "context": c, "response": r, "label": float(y)} for i, c, r, y in lab_corpus.binary_samples(split)]


def _lab_distill(split):
  return [{"id": i, "text": t} for i, t in lab_corpus.distill_texts(split)]


define_task("lab_lm", "lm", _lab_source(_lab_lm))
define_task("lab_imitation", "imitation", _lab_source(_lab_imitation))
define_task("lab_compare", "comparison", _lab_source(_lab_compare))
for _fam in lab_corpus.FAMILIES:
  define_task(f"lab_compare_{_fam}", "comparison", _lab_source(functools.partial(_lab_compare, family=_fam)))
define_task("lab_compare_pair", "comparison", _lab_source(_lab_compare_pair))
define_task("lab_binary", "binary", _lab_source(_lab_binary))
define_task("lab_compare_binary", "comparison", _lab_source(
    lambda split: [b for p in _lab_compare_pair(split) for b in sources.binary_pmp(p)]))
define_task("lab_distill", "distill", _lab_source(_lab_distill))


def lab_last_word(split) -> List[dict]:
  """LAMBADA's format on the held-out lab corpus (the alignment tax on embedded data): each LM document up to its
  last whitespace-separated word is the context (its own whitespace and dialogue markers kept), " word" (trailing
  punctuation removed, as LAMBADA's targets are words) the one choice, correct when greedy decoding reproduces it.
  Documents whose last word is only punctuation are left out (none in the generated corpus; tested)."""
  out = []
  for i, doc in enumerate(lab_corpus.lm_documents(split)):
    head, _, word = doc.rstrip().rpartition(" ")
    word = word.rstrip(".,;:!?\"')")  # LAMBADA's targets are words: the passage ends at the word
    if head.strip() and word:
      out.append({"id": f"lab_lm:{split}:{i}", "context": head, "choices": [" " + word], "targets": [1.0]})
  return out


define_task("tax_lab_lambada", "multiple_choice", _lab_source(lab_last_word))
