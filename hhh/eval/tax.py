"""The alignment tax: a capability evaluation with the intervention (the HHH prompt, or a context-distilled
checkpoint) minus the same evaluation without it.

* lambada (and tax_lab_lambada, the same format on the held-out embedded lab corpus): last-word accuracy, the final word is correct when greedy decoding reproduces it exactly (every
  token of " {word}" is the argmax given the passage and the word's earlier tokens);
* multiple-choice benchmarks (HellaSwag, ARC, OpenBookQA, PIQA from TFDS): the choice with the highest summed
  log-prob (and, reported too, the highest mean log-prob, which favours long answers less).
"""
from __future__ import annotations

from hhh.eval import scoring

LAST_WORD = ("tax_lambada", "tax_lab_lambada")
TASKS = ("tax_lab_lambada", "tax_lambada", "tax_hellaswag", "tax_arc_easy", "tax_arc_challenge", "tax_openbookqa", "tax_piqa")


def capability(task: str, scores: dict, ex) -> dict:
  if task.split("#")[0] in LAST_WORD:  # also the word's mean summed log-prob: graded where accuracy is ~0
    return {"accuracy": float(scores["greedy"][:, 0].mean()), "word_logprob": float(scores["sum"][:, 0].mean()),
            "n": len(ex)}
  return {"accuracy": float(scoring.choice_correct(scores["sum"], ex.label, ex.valid).mean()),
          "accuracy_mean": float(scoring.choice_correct(scores["mean"], ex.label, ex.valid).mean()), "n": len(ex)}


def tax(base: dict, with_intervention: dict) -> dict:
  """{metric: with - without} for every accuracy (and word log-prob) both have (negative = the intervention costs
  capability)."""
  return {k: with_intervention[k] - base[k] for k in base
          if k.startswith(("accuracy", "word_logprob")) and k in with_intervention}
