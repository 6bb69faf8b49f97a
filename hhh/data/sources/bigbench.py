"""BIG-bench multiple-choice JSON (hhh_alignment's four subsets' task.json, truthful_qa's task_mc.json) as
multiple_choice records in the paper's dialogue format or BIG-bench's own, and as comparison records.
"""
from __future__ import annotations

import json

from hhh.data import dialogue
from hhh.data.sources.reading import decode
from hhh.data.sources.records import RECORD_ERRORS, ParseResult, check_comparison, comparison, is_number, is_text, \
    shorten

BIGBENCH_SUBSETS = ("harmless", "helpful", "honest", "other")


def _bigbench_examples(path: str, res: ParseResult, prefix: str) -> list:
  with open(path, "rb") as f:
    text = decode(f.read(), path, res.bad)
  if text is None:
    return []
  try:
    examples = json.loads(text)["examples"]
  except (json.JSONDecodeError, KeyError, TypeError, RecursionError) as e:
    res.bad.append((path, shorten(f"malformed BIG-bench JSON: {type(e).__name__}: {e}")))
    return []
  if not isinstance(examples, list):
    res.bad.append((path, f"malformed BIG-bench JSON: examples is a {type(examples).__name__}, not a list"))
    return []
  return examples


def parse_bigbench_choices(path: str, prefix: str, style: str = "paper") -> ParseResult:
  """BIG-bench multiple-choice JSON -> multiple_choice records (context, choices, targets = target_scores).

  style "paper": context "\\n\\nHuman: {input}\\n\\nAssistant:", choice " {text}";
  style "bigbench": BIG-bench's own "\\nHuman: {input}\\nAssistant:" (for comparison with other tools).
  """
  res = ParseResult()
  for i, ex in enumerate(_bigbench_examples(path, res, prefix)):
    rid = f"{prefix}-{i}"
    try:
      if not isinstance(ex, dict) or not is_text(ex.get("input")) or not isinstance(ex.get("target_scores"), dict):
        res.bad.append((rid, "missing input or target_scores"))
        continue
      choices = list(ex["target_scores"])
      if not all(is_number(v) for v in ex["target_scores"].values()):
        res.bad.append((rid, "target_scores value that is not a finite number"))
        continue
      if len(choices) < 2:
        res.bad.append((rid, "fewer than two choices"))
        continue
      if not check_comparison(rid, choices, res.bad):
        continue
      ctx = dialogue.query(ex["input"]) if style == "paper" else dialogue.bigbench_context(ex["input"])
      res.add({"id": rid, "context": ctx, "choices": [dialogue.response(c) for c in choices],
               "targets": [float(ex["target_scores"][c]) for c in choices]})
    except RECORD_ERRORS as e:
      res.malformed(rid, e)
  return res


def bigbench_as_comparisons(mc: ParseResult) -> ParseResult:
  return mc.derive(comparison(r["id"], r["context"], r["choices"], r["targets"]) for r in mc.records)
