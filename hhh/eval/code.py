"""Code: HumanEval synthesis (pass@k, with and without the interventions) and code-correctness ranking.

Every program runs in hhh.sandbox (child processes, never this one); each is passed / failed / timed_out / crashed
and counted, never silently scored. Modes (`eval.code_mode`):

  sample  n = eval.code_samples completions per problem from each LM condition (plain, prompt: after the HHH
          prompt, distilled), sampled by hhh's sampler (eval.code_temperature, eval.code_top_p, the stop strings
          STOP, eval.code_max_new_tokens), executed: pass@k by the unbiased estimator (hhh.core.metrics.pass_at_k) for
          each k in eval.code_ks up to n. The same samples ranked by the LM's own sum and mean log-prob, and by
          the preference model (condition pm): the chance that a correct one is in the top k
          (hhh.core.metrics.ranked_top_k), next to random choice (= pass@k).
  pool    for models too small to write code: each problem's canonical solution and its mutants
          (hhh.eval.code_pool), each executed for its label; ranked by each LM condition's sum and mean log-prob
          and by the PM. The chance line is the pool's pass@k.

The alignment tax (`tax`): sample mode, pass@1 with the intervention minus without; pool mode, the LM's top-1 by
mean log-prob (it picks a correct candidate) with minus without; each with the paired 95% bootstrap over problems.
Every number has a 95% bootstrap interval over problems. Samples/candidates and their verdicts go to
WORKDIR/code_samples.jsonl.
"""
from __future__ import annotations

import json
import os
import time
from typing import Sequence

import jax
import numpy as np

from hhh.core.errors import ConfigError
from hhh.core import metrics
from hhh.data import rows as rows_lib
from hhh.data import sources
from hhh.data import vocab as vocab_lib
from hhh.eval import code_pool
from hhh.eval import examples as examples_lib
from hhh.eval import intervals
from hhh.eval import samplers as eval_samplers
from hhh import sampling
from hhh.sampling import best_of_n
from hhh import sandbox

NAME = "code"
MODES = ("sample", "pool")
STOP = ("\ndef", "\nclass", "\nif", "\nprint", "\n#")  # Codex's: the completion ends with the function body


def ks_of(spec: str, n: int = 0) -> list:
  try:
    ks = sorted({int(k) for k in str(spec).split(",") if k.strip()})
  except ValueError as e:
    raise ConfigError(f"eval.code_ks must be comma-separated integers, got {spec!r}") from e
  if not ks or ks[0] < 1:
    raise ConfigError(f"eval.code_ks must be integers >= 1, got {spec!r}")
  return [k for k in ks if not n or k <= n]


def sandbox_from(ev):
  return sandbox.Sandbox(sandbox.Limits(timeout_s=float(ev.code_timeout_s), memory_mb=int(ev.code_memory_mb)),
                         isolation=ev.code_isolation, workers=int(ev.code_workers))


def candidate_examples(contexts: Sequence[Sequence[int]], responses: Sequence[Sequence[Sequence[int]]], *,
                       length: int, eoc_id: int) -> examples_lib.Examples:
  """Examples [N, K] of problem i's context with each of its candidates (rows by the one row rule,
  hhh.data.rows); K = the most candidates of any problem, the rest padding (valid 0)."""
  n, k = len(contexts), max(len(r) for r in responses)
  tokens = np.zeros((n, k, length), np.int32)
  start, eoc, valid = (np.zeros((n, k), np.int32) for _ in range(3))
  cut = 0
  for i, (c, rs) in enumerate(zip(contexts, responses)):
    for j, r in enumerate(rs):
      tokens[i, j], eoc[i, j], was_cut = rows_lib.row(c, r, length, eoc_id)
      start[i, j] = eoc[i, j] - min(len(r), length - 1)
      valid[i, j] = 1
      cut += was_cut
  return examples_lib.Examples("code", tokens, start, eoc, np.zeros((n, k), np.float32), valid, None,
                               {"truncated_rows": cut})


def per_problem(score_fn, correct: Sequence[Sequence[bool]], k: int) -> np.ndarray:
  return np.asarray([score_fn(i, np.asarray(c, bool), k) for i, c in enumerate(correct)], np.float64)


def summary(values: np.ndarray) -> dict:
  return {"value": float(values.mean()) if values.size else float("nan"), "ci": intervals.bootstrap(values),
          "per_problem": values.tolist()}


def rankings(scores: dict, correct: list, ks: list) -> dict:
  """{ranker: {k: summary}} of ranked top-k for each scores[ranker] [N, K] over each problem's candidates."""
  return {name: {str(k): summary(per_problem(lambda i, c, k_, s=s: metrics.ranked_top_k(s[i, :len(c)], c, k_),
                                             correct, k)) for k in ks} for name, s in scores.items()}


def chance(correct: list, ks: list) -> dict:
  return {str(k): summary(per_problem(lambda i, c, k_: metrics.pass_at_k(len(c), int(c.sum()), k_), correct, k))
          for k in ks}


def execute(sb, problems, completions: list, log, what: str) -> tuple:
  """Runs every completion of every problem; -> ([[Result]] in the same nesting, seconds)."""
  from hhh.data import humaneval  # pylint: disable=g-import-not-at-top
  flat = [humaneval.program(p, c) for p, cs in zip(problems, completions) for c in cs]
  t0, last = time.perf_counter(), [time.perf_counter()]

  def progress(done, total):
    if time.perf_counter() - last[0] > 30 and done < total:
      log(f"hhh.eval: code {what}: executed {done}/{total} programs")
      last[0] = time.perf_counter()
  results = sb.run_many(flat, progress=progress)
  out, i = [], 0
  for cs in completions:
    out.append(results[i:i + len(cs)])
    i += len(cs)
  seconds = time.perf_counter() - t0
  log(f"hhh.eval: code {what}: {len(flat)} programs in {seconds:.1f}s")
  return out, seconds


def _score(ctx, cond, ex) -> dict:
  s = cond.score(ex, batch_size=ctx.batch_size)
  return {"pm": s["score"]} if cond.is_pm else {"lm_sum": s["sum"], "lm_mean": s["mean"]}


def _records(problems, kinds, completions, results, condition: str, scores: dict) -> list:
  """One JSON-ready record per executed program, with its verdict and every score that ranked it."""
  return [{"task_id": p.task_id, "condition": condition, "candidate": j, "kind": kinds[i][j], "completion": c,
           "status": r.status, "detail": r.detail, "scores": {k: float(v[i, j]) for k, v in scores.items()}}
          for i, p in enumerate(problems) for j, (c, r) in enumerate(zip(completions[i], results[i]))]


def _tax(conditions: dict, key, task_ids: list) -> dict:
  """{condition: with - without} of key(condition)'s per-problem numbers on the problems both evaluated (paired)."""
  base = conditions.get("plain")
  out = {}
  for c in ("prompt", "distilled"):
    if base and c in conditions:
      ids = [conditions[x].get("task_ids", task_ids) for x in (c, "plain")]
      both = sorted(set(ids[0]) & set(ids[1]))
      a, b = ({t: v for t, v in zip(i, key(conditions[x])["per_problem"])} for i, x in zip(ids, (c, "plain")))
      d = intervals.bootstrap_diff([a[t] for t in both], [b[t] for t in both])
      out[c] = {"value": d["value"], "ci": d["ci"], "problems": len(both)}
  return out


def run_pool(ctx, problems, sb, ks, vocab, eoc_id) -> tuple:
  """(results, JSON records, every Result, seconds executing) of the pool mode."""
  pools = [code_pool.pool(p.prompt, p.canonical_solution) for p in problems]
  kinds = [[k for k, _ in pl] for pl in pools]
  completions = [[c for _, c in pl] for pl in pools]
  results, seconds = execute(sb, problems, completions, ctx.log, "pool")
  correct = [np.asarray([r.status == "passed" for r in rs]) for rs in results]
  ex = candidate_examples([vocab.encode(p.prompt) for p in problems],
                          [[vocab.encode(c) for c in cs] for cs in completions], length=int(ctx.config.eval.seq_len),
                          eoc_id=eoc_id)
  by_kind = {k: [0, 0] for k in code_pool.KINDS}
  for ks_, cs in zip(kinds, correct):
    for k, ok in zip(ks_, cs):
      by_kind[k][0] += 1
      by_kind[k][1] += int(ok)
  out = {"pool": {"candidates": int(sum(len(c) for c in correct)), "correct": int(sum(c.sum() for c in correct)),
                  "by_kind": by_kind, "truncated_rows": ex.stats["truncated_rows"]},
         "chance": chance(correct, ks), "conditions": {}}
  every = {}
  for cond in ctx.conditions:
    ctx.log(f"hhh.eval: code pool {cond.name}: scoring {int(ex.valid.sum())} candidates ...")
    scores = _score(ctx, cond, ex)
    every.update({f"{cond.name}/{k}": v for k, v in scores.items()})
    out["conditions"][cond.name] = {"ranked": rankings(scores, correct, ks)}
  if 1 in ks:
    out["tax"] = _tax(out["conditions"], lambda c: c["ranked"]["lm_mean"]["1"], [p.task_id for p in problems])
    out["tax_metric"] = "top-1 by mean log-prob"
  return out, _records(problems, kinds, completions, results, "pool", every), [r for rs in results for r in rs], \
      seconds


def run_sample(ctx, problems, sb, ks, vocab, eoc_id) -> tuple:
  """(results, JSON records, every Result, seconds executing) of the sample mode."""
  ev = ctx.config.eval
  n = int(ev.code_samples)
  ks = [k for k in ks if k <= n]
  settings = sampling.Settings(max_new_tokens=int(ev.code_max_new_tokens), temperature=float(ev.code_temperature),
                               top_p=float(ev.code_top_p), num_samples=n, stop=STOP, seed=int(ev.code_seed))
  samplers = eval_samplers.lm_samplers(ctx.conditions, ctx.config.data.vocab, int(ev.code_batch_size))
  pm = [c for c in ctx.conditions if c.is_pm]
  out, records, all_results, seconds = {"settings": settings.describe(), "conditions": {}}, [], [], 0.0
  ids = [vocab.encode(p.prompt) for p in problems]
  for cond in [c for c in ctx.conditions if not c.is_pm]:
    sampler = samplers[cond.name]
    keep = [i for i, x in enumerate(ids) if 0 < len(x) <= sampler.room(settings)]
    if len(keep) < len(problems):
      ctx.log(f"hhh.eval: code {cond.name}: {len(problems) - len(keep)} problems longer than the model's room "
              f"({sampler.room(settings)} tokens) skipped")
    probs = [problems[i] for i in keep]
    ctx.log(f"hhh.eval: code {cond.name}: sampling {n} completions of {len(keep)} problems ...")
    drawn = sampler.generate([ids[i] for i in keep], settings, prompt_indices=keep)
    samples = [drawn[i * n:(i + 1) * n] for i in range(len(keep))]
    completions = [[s.text for s in ss] for ss in samples]
    results, took = execute(sb, probs, completions, ctx.log, cond.name)
    seconds += took
    flat = [r for rs in results for r in rs]
    all_results += flat
    correct = [np.asarray([r.status == "passed" for r in rs]) for rs in results]
    ex = candidate_examples([ids[i] for i in keep],
                            [[best_of_n.response_ids(s, sampler.eos_id) for s in ss] for ss in samples],
                            length=int(ev.seq_len), eoc_id=eoc_id)
    scores = _score(ctx, cond, ex)
    if pm:
      scores.update(_score(ctx, pm[0], ex))
    out["conditions"][cond.name] = {
        "pass_at_k": chance(correct, ks), "ranked": rankings(scores, correct, ks),
        "counts": sandbox.counts(flat), "problems": len(keep),
        "skipped_too_long": len(problems) - len(keep), "truncated_rows": ex.stats["truncated_rows"],
        "task_ids": [p.task_id for p in probs]}
    records += _records(probs, [["sample"] * n] * len(probs), completions, results, cond.name, scores)
  if 1 in ks:
    out["tax"] = _tax(out["conditions"], lambda c: c["pass_at_k"]["1"], [p.task_id for p in problems])
    out["tax_metric"] = "pass@1"
  return out, records, all_results, seconds


def run(ctx) -> dict | None:
  from hhh.data import humaneval  # pylint: disable=g-import-not-at-top  (TensorFlow)
  ev = ctx.config.eval
  if ev.code_mode not in MODES:
    raise ConfigError(f"eval.code_mode must be one of {MODES}, got {ev.code_mode!r}")
  if ev.code_mode == "sample" and int(ev.code_samples) < 1:
    raise ConfigError(f"eval.code_samples must be >= 1, got {ev.code_samples}")
  ks = ks_of(ev.code_ks)
  try:
    problems, data = humaneval.read_problems()
  except sources.MissingData as e:
    ctx.missing["code"] = str(e)
    ctx.log(f"hhh.eval: code unavailable: {e}")
    return None
  if data["skipped"]:
    ctx.log(f"hhh.eval: HumanEval ({data['source']}): {sum(data['skipped'].values())} records skipped: " +
            ", ".join(f"{k} {v}" for k, v in data["skipped"].items()))
  if int(ev.code_problems) > 0:
    problems = problems[:int(ev.code_problems)]
  sb = sandbox_from(ev)
  ctx.log(f"hhh.eval: code ({ev.code_mode}): {len(problems)} problems; sandbox {sandbox.layers(sb.describe())}")
  vocab = vocab_lib.get_vocabulary(ctx.config.data.vocab)
  t0 = time.perf_counter()
  body, records, results, seconds = (run_pool if ev.code_mode == "pool" else run_sample)(
      ctx, problems, sb, ks, vocab, ctx.eoc_id)
  ctx.timing["code/total"] = time.perf_counter() - t0
  res = {"mode": ev.code_mode, "problems": len(problems), "ks": ks, "data": data, **body,
         "execution": {"sandbox": sb.describe(), "programs": len(results), "seconds": seconds,
                       "programs_per_s": len(results) / seconds if seconds else float("nan"),
                       "counts": sandbox.counts(results)}, "samples_file": "code_samples.jsonl"}
  if jax.process_index() == 0:
    os.makedirs(ctx.workdir, exist_ok=True)
    with open(os.path.join(ctx.workdir, res["samples_file"]), "w", encoding="utf-8") as f:
      for rec in records:
        f.write(json.dumps(rec, ensure_ascii=False) + "\n")
  return res


# ----------------------------------------------------------------------------------------------- outputs


def headline(res: dict) -> dict:
  """The suite's results without the per-problem lists (what the laboratory's lab.json keeps)."""
  def strip(d):
    return {k: strip(v) for k, v in d.items() if k != "per_problem"} if isinstance(d, dict) else d
  return strip({k: res[k] for k in ("problems", "pool", "chance", "conditions", "tax", "execution") if k in res})


def scalars(res: dict) -> dict:
  out = {}
  for cond, c in res.get("conditions", {}).items():
    for k, v in c.get("pass_at_k", {}).items():
      out[f"code/{cond}/pass_at_{k}"] = v["value"]  # TensorBoard tags take no "@"
    for ranker, by_k in c.get("ranked", {}).items():
      for k, v in by_k.items():
        out[f"code/{cond}/{ranker}/top{k}"] = v["value"]
  for k, v in res.get("chance", {}).items():
    out[f"code/chance/top{k}"] = v["value"]
  for cond, v in res.get("tax", {}).items():
    out[f"code/tax_{cond}"] = v["value"]
  return out


def table(res: dict) -> list:
  ex = res["execution"]
  sbx = ex["sandbox"]
  lines = [f"## Code (HumanEval, {res['mode']} mode, {res['problems']} problems; % with 95% intervals over problems)",
           "", f"Executed {ex['programs']} programs in {ex['seconds']:.1f}s ({ex['programs_per_s']:.1f}/s): " +
           ", ".join(f"{k} {v}" for k, v in ex["counts"].items()) + f". Sandbox: {sandbox.layers(sbx)}.", ""]
  if res["mode"] == "pool":
    pool = res["pool"]
    lines += [f"Pool: {pool['candidates']} candidates, {pool['correct']} correct (" +
              ", ".join(f"{k} {c}/{n}" for k, (n, c) in pool["by_kind"].items() if n) + ").", ""]
  ks = sorted({k for c in res["conditions"].values() for r in c["ranked"].values() for k in r}, key=int)
  lines += ["| condition | ranked by | " + " | ".join(f"top-{k}" for k in ks) + " |", "|---|---|" + "---|" * len(ks)]
  fmt = lambda d: intervals.fmt(d["value"], d["ci"]) if d else "-"  # noqa: E731
  if res["mode"] == "pool":
    lines.append("| - | random (chance) | " + " | ".join(fmt(res["chance"].get(k)) for k in ks) + " |")
  for cond, c in res["conditions"].items():
    if "pass_at_k" in c:
      lines.append(f"| {cond} | random (pass@k) | " + " | ".join(fmt(c["pass_at_k"].get(k)) for k in ks) + " |")
    for ranker, by_k in c["ranked"].items():
      lines.append(f"| {cond} | {ranker} | " + " | ".join(fmt(by_k.get(k)) for k in ks) + " |")
  if res.get("tax"):
    lines += ["", f"Alignment tax on code ({res['tax_metric']}, with - without, points): " +
              "; ".join(f"{c} {intervals.fmt(v['value'], v['ci'], signed=True)}" for c, v in res["tax"].items())]
  return lines + [""]
