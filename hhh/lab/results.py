"""The laboratory's results: the one dict that run_lab returns, DIR/lab.json holds (json.dump, in the order the
stages fill it; `write_results` writes it and DIR/report.md) and report.py, findings.py, seeds.py and plots.py read.
`LabResults` lists every key and what it holds; it is a TypedDict, so the results stay a plain dict and lab.json
keeps its format. Sizes are the ladder's names (tiny, lab_s, ...), arms of the finetuning grid "pmp" (from the PMP
run) and "no_pmp" (from the LM), n a finetuning-set size, factor a multiple of the finetuning rate.
"""
from __future__ import annotations

import json
import os
from typing import Any, TypedDict

from hhh.lab.report import report_markdown


class LabResults(TypedDict, total=False):
  """Every key of the laboratory's results (hhh.lab.stages.run_seed fills them; hhh.lab.run.run_lab adds
  across_seeds and replaces findings and wall_time_s with several seeds)."""
  # The settings and the models.
  preset: dict  # hhh.lab.settings.resolve's settings of this seed
  sizes: dict[str, int]  # size -> non-embedding parameters
  train: dict[str, dict]  # run name -> the run's last logged numbers (loss, step, eval/..., final_loss)
  # Pairwise accuracy on held-out lab_compare, per size and objective (hhh.lab.report.OBJECTIVES).
  objectives: dict[str, dict[str, float]]  # size -> objective -> accuracy
  objectives_ci: dict[str, dict[str, Any]]  # size -> objective -> 95% bootstrap interval
  compare_heldout: dict  # task, split, pairs, examples of that comparison set
  # Evaluations, per size: hhh.eval's conditions (plain, prompt, distilled, pm) as it returns them.
  hhh: dict[str, dict]  # HHH evaluations (BIG-bench hhh_alignment), when its files are found
  hhh_n: int  # HHH comparisons evaluated
  hhh_timing_s: dict[str, Any]  # size -> seconds of the HHH evaluation
  truthfulqa: dict[str, dict]  # TruthfulQA MC (largest size, opt-in)
  tax: dict[str, dict]  # the alignment tax on tax_lab_lambada
  toxicity: dict[str, dict]  # toxicity of sampled continuations per condition
  toxicity_info: dict  # source, prompts, challenging, settings, scorer of the toxicity evaluation
  code: dict[str, dict]  # code ranking (hhh.eval.code.headline)
  calibration: dict[str, Any]  # "<size> <model>, <pairs>" -> reliability table (empty ones dropped)
  ece: dict[str, float]  # "<size>/<task/condition>" -> expected calibration error
  # PMP -> finetuning (sample efficiency) at pmp_size.
  pmp: dict[str, dict[int, float]]  # arm -> n -> test accuracy at the rate picked on validation
  pmp_ci: dict[str, dict[int, Any]]  # arm -> n -> its 95% interval
  pmp_lr: dict[str, dict[int, float]]  # arm -> n -> the picked rate factor
  pmp_grid: dict[str, dict[int, dict[float, dict]]]  # arm -> n -> factor -> validation, test, ci, correct, pairs
  pmp_heldout: dict  # task, split, examples, pairs, selection of the finetuned PMs' test set
  # Per-example outcomes (for paired bootstrap intervals over examples and seeds: hhh.lab.findings).
  examples: dict  # {"objectives": size -> objective -> {correct, pairs}, "pmp": arm -> n -> {correct, pairs}}
  # Generation, the verdicts, the bookkeeping.
  dialogues: list[dict]  # condition, context, sample, stop_reason of each sampled dialogue
  findings: list[dict]  # the paper's findings vs this run (hhh.lab.findings)
  across_seeds: dict  # several seeds only: hhh.lab.seeds.summary
  bigbench_missing: str  # when the BIG-bench files are missing: how to get them
  stage_times_s: dict[str, float]  # stage -> seconds (a reused stage: the time it took when it ran)
  reused_stages: list[str]  # stages reused from an earlier run
  wall_time_s: float  # seconds of this run
  plots: dict[str, Any]  # figure name -> path(s) under DIR/plots (hhh.lab.plots.lab_figures)


def write_results(res: LabResults, workdir: str) -> None:
  """DIR/lab.json (every number) and DIR/report.md (hhh.lab.report) of `res`."""
  with open(os.path.join(workdir, "lab.json"), "w") as f:
    json.dump(res, f, indent=1, default=str)
  with open(os.path.join(workdir, "report.md"), "w") as f:
    f.write(report_markdown(res))
