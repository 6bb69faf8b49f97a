"""Best-of-n: sample n responses per prompt, keep the one a preference model scores highest.

  python -m hhh.best_of_n --config=configs/sample.py:SIZE --config.checkpoint=LM_RUN --config.pm_checkpoint=PM_RUN \\
      --config.prompts=FILE_OR_TEXT --config.best_of=8 [--config.judge_checkpoint=OTHER_PM_RUN] --out=best.jsonl

For every prompt and each of `num_samples` draws, `best_of` candidates are sampled (hhh.sampling, the settings of
configs/sample.py) and scored by the preference model at `pm_checkpoint` (its score at the end-of-context token after
context + response, exactly as it was trained and as hhh.eval reads it); the highest score is chosen (ties: the
first candidate). One more sample, drawn independently with the same settings, is the single-sample baseline. With
`judge_checkpoint` (a second preference model; using the same PM would grade its own choices), the judge scores the
chosen response and the baseline: the win rate of best-of-n over a single sample is the fraction of pairs the judge
scores higher (a tie counts 1/2), reported with its standard error.

The PM sees the row's own context (the human turn, or the raw prompt), not the shared HHH prompt the LM may have
been prefixed with: preference models are trained on dialogues without it. The PM's architecture is read from its
run's config.json (so it may be another size than the LM); without one, the LM's model config with a score head.

Each output line: prompt_index, sample_index, prompt, context, chosen (text), chosen_pm_score, candidates [{sample,
pm_score, sum_logprob, stop_reason}], baseline, baseline_pm_score and, with a judge, judge_chosen, judge_baseline,
win; the summary (mean PM score of the chosen and of the baseline, win rate) is printed and written to OUT.summary.json.
The toxicity evaluation uses the same chooser as its best_of_n condition (hhh.eval.toxicity).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from typing import Callable, Optional, Sequence

import jax
import ml_collections
import numpy as np

from hhh import cli
from hhh.core import buckets, paths
from hhh.core.errors import ConfigError
from hhh.data import rows as rows_lib
from hhh.data import vocab as vocab_lib
from hhh.run import model as run_model
from hhh import sampling, scoring


def response_ids(sample, eos_id: int) -> list:
  """A Sample's response tokens as a PM scores them: without the end-of-sequence token that ended it."""
  toks = list(sample.tokens)
  if sample.stop_reason == "eos" and toks and toks[-1] == eos_id:
    toks = toks[:-1]
  return toks


class PreferenceJudge:
  """Scores (context, response) token sequences with a preference (or binary) model's hhh.scoring.Scorer."""

  def __init__(self, scorer, *, vocab: str, batch_size: int = 32, path: str = ""):
    self.scorer, self.path = scorer, path
    self.max_len = int(scorer.model.cfg.max_len)
    self.eoc_id = vocab_lib.eoc_id(vocab)
    self.eos_id = vocab_lib.eos_id(vocab)
    self.batch_size = max(1, int(batch_size))
    self.truncated = 0
    self.model_config = None  # set by load(): the architecture it was built with

  @classmethod
  def load(cls, path: str, *, model_cfg, mesh_cfg, vocab: str, batch_size: int = 32, devices=None,
           what: str = "pm_checkpoint") -> "PreferenceJudge":
    """The preference model at `path` on the mesh; its architecture from its run's config.json (else model_cfg)."""
    path = paths.resolve(path)
    saved = run_model.run_model_config(path, what)
    mc = ml_collections.ConfigDict(saved if saved is not None else model_cfg.to_dict())
    mc.score_head = True
    ms, params = run_model.model_from_run(mc, mesh_cfg, path, what=what, devices=devices)
    judge = cls(scoring.Scorer.of(ms, params), vocab=vocab,
                batch_size=batch_size, path=path)
    judge.model_config = mc.to_dict()
    return judge

  def score(self, contexts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]]) -> np.ndarray:
    """PM scores [N] of context[i] + response[i] (rows cut to the model's context by the truncation rule)."""
    n = len(contexts)
    out = np.zeros((n,), np.float64)
    order = np.argsort([len(c) + len(r) for c, r in zip(contexts, responses)], kind="stable")
    for i in range(0, n, self.batch_size):
      idx = order[i:i + self.batch_size]
      need = max(len(contexts[j]) + len(responses[j]) + 1 for j in idx)
      length = buckets.bucket_length(need, self.max_len)
      built = [rows_lib.row(contexts[j], responses[j], length, self.eoc_id) for j in idx]
      self.truncated += sum(r[2] for r in built)
      tokens = np.stack([r[0] for r in built])
      eoc = np.asarray([r[1] for r in built], np.int32)
      out[idx] = self.scorer.pm(tokens, eoc, np.ones_like(eoc))
    return out

  def choose(self, contexts: Sequence[Sequence[int]], groups: Sequence[Sequence]) -> list:
    """For each context and its group of candidate Samples: (index of the highest-scoring candidate, the group's
    scores); ties go to the first. Every candidate of every group is scored in one batched pass."""
    flat = self.score([c for c, g in zip(contexts, groups) for _ in g],
                      [response_ids(s, self.eos_id) for g in groups for s in g])
    out, i = [], 0
    for g in groups:
      scores = flat[i:i + len(g)]
      i += len(g)
      out.append((int(np.argmax(scores)), scores))
    return out


def win_rate(judge_chosen, judge_baseline) -> dict:
  """Fraction of pairs the judge scores the chosen response higher (ties 1/2), with its standard error."""
  a, b = np.asarray(judge_chosen, np.float64), np.asarray(judge_baseline, np.float64)
  wins = (a > b) + 0.5 * (a == b)
  n = int(wins.size)
  rate = float(wins.mean()) if n else float("nan")
  return {"win_rate": rate, "stderr": float(wins.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan"),
          "pairs": n, "ties": int((a == b).sum())}


def best_of_n(sampler, prompts: Sequence[Sequence[int]], settings, policy: PreferenceJudge, *, best_of: int,
              judge: Optional[PreferenceJudge] = None, prompt_indices=None) -> tuple:
  """(rows, summary): for each prompt and each of settings.num_samples draws, best_of candidates and one baseline
  sample; the chosen candidate by `policy`; with `judge`, both judged."""
  if int(best_of) < 1:
    raise ConfigError(f"best_of must be >= 1, got {best_of}")
  k, n = int(settings.num_samples), int(best_of)
  per = k * (n + 1)
  drawn = sampler.generate(prompts, dataclasses.replace(settings, num_samples=per), prompt_indices=prompt_indices)
  slots = [(i, j, drawn[i * per + j * (n + 1):i * per + (j + 1) * (n + 1)]) for i in range(len(prompts))
           for j in range(k)]  # (prompt, draw, n candidates + the baseline)
  ctxs = [prompts[i] for i, _, _ in slots]
  chosen = policy.choose(ctxs, [group[:n] for _, _, group in slots])
  base_scores = policy.score(ctxs, [response_ids(group[n], policy.eos_id) for _, _, group in slots])
  rows = []
  for (i, j, group), (pick, scores), base_score in zip(slots, chosen, base_scores):
    rows.append({"prompt_index": i, "sample_index": j, "chosen": group[pick], "chosen_index": pick,
                 "candidates": group[:n], "pm_scores": [float(x) for x in scores],
                 "chosen_pm_score": float(scores[pick]), "baseline": group[n], "baseline_pm_score": float(base_score)})
  summary = {"best_of": n, "draws": len(rows),
             "mean_pm_score_chosen": float(np.mean([r["chosen_pm_score"] for r in rows])),
             "mean_pm_score_baseline": float(np.mean([r["baseline_pm_score"] for r in rows])),
             "pm_rows_truncated": policy.truncated}
  if judge is not None:
    ctxs = [prompts[r["prompt_index"]] for r in rows]
    jc = judge.score(ctxs, [response_ids(r["chosen"], judge.eos_id) for r in rows])
    jb = judge.score(ctxs, [response_ids(r["baseline"], judge.eos_id) for r in rows])
    for r, a, b in zip(rows, jc, jb):
      r["judge_chosen"], r["judge_baseline"] = float(a), float(b)
      r["win"] = float((a > b) + 0.5 * (a == b))
    summary["judge"] = win_rate(jc, jb)
  return rows, summary


def run(config, out: str, *, devices=None, log: Callable[[str], None] = print) -> dict:
  """The command: samples, chooses, judges, writes OUT (JSONL) and OUT.summary.json; returns the summary."""
  out = paths.resolve(out)
  if not out:
    raise ConfigError("--out is required: the JSONL file the chosen samples go to")
  if not config.pm_checkpoint:
    raise ConfigError("--config.pm_checkpoint is required: the preference model that ranks the candidates")
  texts = sampling.read_prompts(config.prompts)
  contexts = [sampling.format_context(t, config.format) for t in texts]
  sampler, settings, info = sampling.from_config(config, devices=devices)
  ids = [list(sampler.vocab.encode(c)) for c in contexts]
  sampler.check_lengths(ids, settings)
  policy = PreferenceJudge.load(config.pm_checkpoint, model_cfg=config.model, mesh_cfg=config.mesh,
                                vocab=config.data.vocab, batch_size=int(config.batch_size), devices=devices,
                                what="pm_checkpoint")
  judge = None
  if config.judge_checkpoint:
    if paths.resolve(config.judge_checkpoint) == policy.path:
      log("hhh.best_of_n: judge_checkpoint is the policy PM itself: the win rate grades its own choices")
    judge = PreferenceJudge.load(config.judge_checkpoint, model_cfg=config.model, mesh_cfg=config.mesh,
                                 vocab=config.data.vocab, batch_size=int(config.batch_size), devices=devices,
                                 what="judge_checkpoint")
  t0 = time.perf_counter()
  rows, summary = best_of_n(sampler, ids, settings, policy, best_of=int(config.best_of), judge=judge)
  summary.update({**info, **settings.describe(), "pm_checkpoint": policy.path,
                  "judge_checkpoint": judge.path if judge else "", "wall_s": time.perf_counter() - t0,
                  "prompts": len(texts)})
  if jax.process_index() == 0:
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
      for r in rows:
        rec = {"prompt_index": r["prompt_index"], "sample_index": r["sample_index"], "prompt": texts[r["prompt_index"]],
               "context": contexts[r["prompt_index"]], "chosen": r["chosen"].text, "chosen_index": r["chosen_index"],
               "chosen_pm_score": r["chosen_pm_score"],
               "candidates": [{"sample": c.text, "pm_score": s, "sum_logprob": c.sum_logprob,
                               "stop_reason": c.stop_reason} for c, s in zip(r["candidates"], r["pm_scores"])],
               "baseline": r["baseline"].text, "baseline_pm_score": r["baseline_pm_score"]}
        for key in ("judge_chosen", "judge_baseline", "win"):
          if key in r:
            rec[key] = r[key]
        f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    with open(out + ".summary.json", "w", encoding="utf-8") as f:
      json.dump(summary, f, indent=1, sort_keys=True)
  msg = (f"hhh.best_of_n: {summary['draws']} draws of best-of-{summary['best_of']} over {len(texts)} prompts; mean PM "
         f"score chosen {summary['mean_pm_score_chosen']:.3f} vs single sample {summary['mean_pm_score_baseline']:.3f}")
  if "judge" in summary:
    j = summary["judge"]
    msg += (f"; judge win rate {100 * j['win_rate']:.1f}% +- {100 * j['stderr']:.1f} ({j['pairs']} pairs, "
            f"{j['ties']} ties)")
  log(msg + f" -> {out}")
  return summary


def main(argv=None):

  cli.config_command(
      argv, run, config_help="configs/sample.py:SIZE; set --config.checkpoint=LM_RUN, --config.pm_checkpoint=PM_RUN, "
      "--config.prompts=FILE_OR_TEXT and --config.best_of=N (optionally --config.judge_checkpoint).",
      strings=[("out", None, "JSONL file for the chosen samples (one line per prompt and draw: chosen, every "
                "candidate with its PM score, the baseline, the judge's scores); the summary goes to "
                "OUT.summary.json.")], required=["config", "out"], config_example="configs/sample.py:tiny")


if __name__ == "__main__":
  main()
