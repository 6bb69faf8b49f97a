"""The laboratory: the paper's experiments end to end on the embedded data, on a laptop.

  python -m hhh.lab --workdir=DIR                        # ~15-16 min on 2 CPU cores (measured times: docs/lab.md)
  python -m hhh.lab --workdir=DIR --config.preset=smoke  # a couple of minutes (CI)
  python -m hhh.lab --workdir=DIR --config.preset=gpu    # one GPU/TPU host: the paper's 13m, 42m, 197m

Runs, in-process through the one trainer (hhh.train.train; no subprocesses, TensorFlow and JAX start once):
  1. pretrain an LM at each size of the ladder (default tiny, lab_s, lab_m) on the embedded corpus (lab_lm);
  2. from each LM: imitation learning (lab_imitation), binary discrimination (lab_binary) and a ranked preference
     model (lab_compare, K=4);
  3. at pmp_size (default lab_s; else the largest size): binary PMP (lab_compare_binary) -> finetune on
     lab_compare_hhh with growing numbers of examples, against the same finetuning without PMP (sample efficiency),
     both over a learning-rate grid (rate picked on validation, scored on test);
  4. context distillation of the HHH prompt into the largest LM (lab_distill);
  5. evaluation (hhh.eval): pairwise accuracy on the held-out lab comparisons for every objective, HHH evaluations
     (BIG-bench hhh_alignment: plain / prompt / distilled / PM) and TruthfulQA (opt-in, largest size) when the
     BIG-bench files are found,
     the alignment tax (last-word accuracy on the held-out lab corpus with and without the prompt / distillation),
     toxicity (k sampled continuations of the project's 40 embedded prompts in RealToxicityPrompts' format, plain /
     prompt / distilled, scored by the offline scorer), calibration;
  6. generation: a few sampled dialogues of the largest LM (plain, with the HHH prompt, distilled) on held-out lab
     questions;
  7. DIR/report.md with the tables and the plots (DIR/plots/*.png), DIR/lab.json with every number.
Every run lives in DIR/runs/<name>, every evaluation in DIR/eval/<name>; rerunning the command resumes (finished runs
and evaluations return at once). Every accuracy in the report has a 95% bootstrap interval (hhh.eval.intervals) and
the report tests the paper's findings against this run (hhh.lab.findings). The default preset trains 2 seeds
(--config.seeds=N; the second and later in DIR/seed_<seed>): every verdict is decided over the seeds and the
examples, and the report adds the spread over seeds.

The package, one concern per module: settings.py (presets, resolved settings, each stage's config), stages.py (what
each stage runs, for one seed), progress.py (the console progress and time-left estimate), run.py (run_lab: the seeds,
the compilation cache), main.py (the command), results.py (LabResults: every key of the results, i.e. of
DIR/lab.json), report.py, findings.py, seeds.py, plots.py.
"""
from __future__ import annotations

from hhh.lab.main import main  # the function: `hhh.lab.main` names it, not the module (python -m hhh.lab)
from hhh.lab.progress import Progress, param_count, stage_costs
from hhh.lab.report import report_markdown
from hhh.lab.results import LabResults
from hhh.lab.run import compile_cache, run_lab
from hhh.lab.settings import (default_config, eval_config, finetune_run_name, load_config, preset_from_argv, resolve,
                              run_config, short_run)
from hhh.lab.stages import bigbench_available, bigbench_howto, run_seed, sample_dialogues
