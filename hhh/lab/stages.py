"""What the laboratory runs for one seed (`run_seed`), stage by stage, in-process through the one trainer
(hhh.train.train) and the one evaluation (hhh.eval.run.evaluate): the LMs of the ladder, the three objectives per
size, PMP and the finetuning grid, context distillation, every evaluation, a few sampled dialogues, then DIR/lab.json
and DIR/report.md. A rerun resumes: a finished run returns at once (its numbers read back from its metrics.jsonl),
an evaluation of the same checkpoints with the same config is reused (`eval_key`).
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from typing import Callable, Optional

import ml_collections

from hhh import train as train_lib
from hhh.data import lab_corpus
from hhh.data import sources
from hhh.eval import code as code_eval
from hhh.eval import run as eval_run
from hhh.lab import findings
from hhh.lab import plots
from hhh.lab.progress import Progress, param_count, stage_costs
from hhh.lab.results import LabResults, write_results
from hhh.lab.settings import (FINETUNE_SPLIT, FINETUNE_TASK, TAX_TASK, eval_config, finetune_run_name, load_config,
                              run_config)
from hhh.run.metric_writer import read_metrics
from hhh.sampling import sample as sample_lib


def run_seed(p: dict, workdir: str, log: Callable[[str], None], *, label: str = "") -> LabResults:
  """Every stage of the laboratory for one seed (p: resolve()'s settings) in `workdir`."""
  t0 = time.perf_counter()
  sizes, big, pmp_size = p["sizes"], p["sizes"][-1], p["pmp_size"]
  runs = os.path.join(workdir, "runs")
  os.makedirs(workdir, exist_ok=True)
  have_bb = bigbench_available() and (p["hhh"] or p["truthfulqa"])
  prog = Progress(stage_costs(p), os.path.join(workdir, "stage_times.json"), label=label)
  res: LabResults = {"preset": p, "sizes": {s: param_count(s) for s in sizes}, "train": {}, "objectives": {},
                     "objectives_ci": {}, "hhh": {}, "truthfulqa": {}, "tax": {}, "toxicity": {}, "code": {},
                     "pmp": {"pmp": {}, "no_pmp": {}}, "pmp_ci": {"pmp": {}, "no_pmp": {}}, "calibration": {},
                     "ece": {}, "examples": {"objectives": {}, "pmp": {"pmp": {}, "no_pmp": {}}}}

  def train(name, cfg, what):
    prog.start(name, what)
    out = train_lib.train(cfg, os.path.join(runs, name))
    reused = "loss" not in out
    if reused:  # finished earlier (a rerun resumes): its numbers come from the run's metrics.jsonl
      out = {**logged_metrics(os.path.join(runs, name)), **out}
    if out.get("preempted"):  # SIGTERM: the run saved its state; stop here, the same command resumes
      raise SystemExit(f"hhh.lab: {name} was preempted and saved; rerun the same command to resume")
    res["train"][name] = {k: v for k, v in out.items() if isinstance(v, (int, float))}
    res["train"][name]["final_loss"] = final_loss(os.path.join(runs, name))
    prog.end(name, f"(loss {out.get('loss', float('nan')):.3f})", reused=reused)
    return os.path.join(runs, name)

  def run_eval(name, ec, what):
    """hhh.eval in DIR/eval/<name> (stage eval_<name>), reused when an earlier run evaluated the same checkpoints
    with the same config."""
    prog.start(f"eval_{name}", what)
    out_dir = os.path.join(workdir, "eval", name)
    key = eval_key(ec)
    out = reusable_eval(out_dir, key)
    if out is None:
      out = eval_run.evaluate(ec, out_dir)
      with open(os.path.join(out_dir, "lab_eval_key.txt"), "w") as f:
        f.write(key)
    prog.end(f"eval_{name}", reused=out.get("_reused", False))
    return out

  def take(size, name, cond, metric):
    """One objective's pairwise accuracy on lab_compare: value, interval, per-example outcomes."""
    if cond is None or metric not in cond:
      return
    res["objectives"].setdefault(size, {})[name] = cond[metric]
    res["objectives_ci"].setdefault(size, {})[name] = cond.get(f"{metric}_ci")
    per = cond.get("per_example", {})
    if metric in per:
      res["examples"]["objectives"].setdefault(size, {})[name] = {"correct": per[metric], "pairs": per["pairs"]}

  lm, objs = {}, {}
  for s in sizes:
    lm[s] = train(f"pretrain_{s}", run_config("pretrain", s, p, steps=p["pretrain_steps"]),
                  f"pretrain a {param_count(s):,}-parameter LM on lab_lm")
  for s in sizes:
    objs[(s, "imitation")] = train(f"imitation_{s}", run_config("imitation", s, p, steps=p["objective_steps"],
                                                                 init_from=lm[s]), "imitation learning")
    objs[(s, "binary")] = train(f"binary_{s}", run_config("binary", s, p, steps=p["objective_steps"],
                                                          init_from=lm[s]), "binary discrimination")
    objs[(s, "preference")] = train(f"preference_{s}", run_config("preference", s, p, steps=p["objective_steps"],
                                                                  init_from=lm[s]), "ranked preference model")

  # PMP -> finetune (sample efficiency) at pmp_size (default preset: lab_s; else the largest size). Both arms,
  # finetuning from the PMP run and from the LM (a fresh score head), run at every learning rate of the grid
  # (finetune_lr_factors x the finetuning rate; 10x = the PMP rate), the rate is picked per arm and set size by the
  # trainer's held-out accuracy on lab_compare_hhh validation, and every grid point is scored by hhh.eval on the same
  # held-out lab_compare_hhh test comparisons (finetune_eval_examples of them): the arms are compared example by
  # example (paired bootstrap), at matched rates and at each arm's best.
  pmp = train(f"pmp_{pmp_size}", run_config("pmp", f"{pmp_size},binary,lab", p, steps=p["pmp_steps"],
                                            init_from=lm[pmp_size]), "binary preference-model pre-training")
  for n in p["finetune_examples"]:
    steps = max(n // p["batch_size"], 1)
    for label, init in (("pmp", pmp), ("no_pmp", lm[pmp_size])):
      grid = res.setdefault("pmp_grid", {}).setdefault(label, {}).setdefault(n, {})
      for factor in p["finetune_lr_factors"]:
        name = finetune_run_name(label, pmp_size, n, factor)
        cfg = run_config("finetune", f"{pmp_size},lab", p, steps=steps, init_from=init, lr_factor=factor,
                         eval_every=steps, eval_batches=8)
        run = train(name, cfg, f"finetune on {n} lab_compare_hhh comparisons ({label.replace('_', ' ')}, "
                               f"{factor:g}x the finetuning rate)")
        ec = eval_config(pmp_size, p, checkpoint="", pm=run, suites="compare", conditions="pm")
        with ec.unlocked():
          ec.eval.compare_tasks, ec.eval.compare_split = FINETUNE_TASK, FINETUNE_SPLIT
          ec.eval.max_examples = p["finetune_eval_examples"]
        out = run_eval(name, ec, f"score the finetuned PM on held-out {FINETUNE_TASK} ({FINETUNE_SPLIT})")
        cond = out["compare"].get(FINETUNE_TASK, {}).get("conditions", {}).get("pm")
        if cond:
          grid[factor] = {"validation": res["train"][name].get("eval/accuracy"), "test": cond["score"],
                          "ci": cond["score_ci"], "correct": cond["per_example"]["score"],
                          "pairs": cond["per_example"]["pairs"]}
          res["pmp_heldout"] = {"task": FINETUNE_TASK, "split": FINETUNE_SPLIT,
                                "examples": out["compare"][FINETUNE_TASK]["n"], "pairs": cond["pairs"],
                                "selection": f"{FINETUNE_TASK} validation, the trainer's last held-out evaluation "
                                             f"({8 * p['batch_size']} comparisons)"}
      if grid:  # the rate with the best validation accuracy (ties: the lower rate); reported on test
        best = min(grid, key=lambda f: (-(grid[f]["validation"] if grid[f]["validation"] is not None else -1), f))
        g = grid[best]
        res["pmp"][label][n], res["pmp_ci"][label][n] = g["test"], g["ci"]
        res.setdefault("pmp_lr", {}).setdefault(label, {})[n] = best
        res["examples"]["pmp"][label][n] = {"correct": g["correct"], "pairs": g["pairs"]}

  distilled = train(f"distill_{big}", run_config("distill", big, p, steps=p["distill_steps"], init_from=lm[big]),
                    "context distillation of the HHH prompt")

  # Evaluation.
  suites = (["compare", "tax", "toxicity"] + (["hhh"] if have_bb and p["hhh"] else [])
            + (["truthfulqa"] if have_bb and p["truthfulqa"] else []) + (["code"] if p["code_problems"] else []))
  if not have_bb:
    res["bigbench_missing"] = bigbench_howto()
    log(res["bigbench_missing"])
  for s in sizes:
    # TruthfulQA (299 questions x up to 13 choices x 4 conditions) only at the largest size: the time budget
    own = [x for x in suites if x != "truthfulqa" or s == big]
    ec = eval_config(s, p, checkpoint=lm[s], pm=objs[(s, "preference")],
                      distilled=distilled if s == big else "", suites=",".join(own))
    out = run_eval(s, ec, f"evaluate LM (plain, prompt{', distilled' if s == big else ''}) and PM: {', '.join(own)}")
    if "hhh" in out:
      res["hhh"][s] = out["hhh"]["conditions"]
      res["hhh_n"] = out["hhh"]["n"]
      res["hhh_timing_s"] = res.get("hhh_timing_s", {})
      res["hhh_timing_s"][s] = out["timing_s"].get("hhh/total")
    if "truthfulqa" in out:
      res["truthfulqa"][s] = out["truthfulqa"]["conditions"]
    if TAX_TASK in out.get("tax", {}):
      res["tax"][s] = out["tax"][TAX_TASK]
    if "code" in out:  # without the per-problem lists (eval/<size>/eval.json keeps them)
      res["code"][s] = code_eval.headline(out["code"])
    if "toxicity" in out:
      res["toxicity"][s] = out["toxicity"]["conditions"]
      res["toxicity_info"] = {k: out["toxicity"][k] for k in ("source", "prompts", "challenging", "settings",
                                                              "scorer")}
    cmp = out["compare"].get("lab_compare", {}).get("conditions", {})
    res["objectives"].setdefault(s, {})
    take(s, "pretrained LM (mean log-prob)", cmp.get("plain"), "mean")
    take(s, "ranked PM", cmp.get("pm"), "score")
    if cmp.get("pm"):
      res["compare_heldout"] = {"task": "lab_compare", "split": "test", "pairs": cmp["pm"]["pairs"],
                                "examples": out["compare"]["lab_compare"]["n"]}
    res["calibration"][f"{s} ranked PM, lab comparisons"] = out["calibration"].get("lab_compare/pm_pairs")
    if out["calibration"].get("hhh/pm_pairs"):
      res["calibration"][f"{s} ranked PM, HHH pairs"] = out["calibration"]["hhh/pm_pairs"]
    for k, v in out["ece"].items():
      res["ece"][f"{s}/{k}"] = v

    ec = eval_config(s, p, checkpoint=objs[(s, "imitation")], pm=objs[(s, "binary")], suites="compare",
                      conditions="plain,pm")
    out = run_eval(f"objectives_{s}", ec, "evaluate the imitation and binary models on held-out lab comparisons")
    cmp = out["compare"].get("lab_compare", {}).get("conditions", {})
    take(s, "imitation (mean log-prob)", cmp.get("plain"), "mean")
    take(s, "binary", cmp.get("pm"), "score")
    res["calibration"][f"{s} binary, lab comparisons"] = out["calibration"].get("lab_compare/pm_pairs")
  res["calibration"] = {k: v for k, v in res["calibration"].items() if v}

  prog.start("dialogues", f"sample {p['dialogues']} dialogue(s) from the {big} LM: plain, with the HHH prompt, "
                           "distilled")
  res["dialogues"] = sample_dialogues(big, p, lm=lm[big], distilled=distilled,
                                      out_dir=os.path.join(workdir, "samples"))
  prog.end("dialogues")

  prog.start("report", "plots and report.md")
  res["findings"] = findings.findings(res)
  res["stage_times_s"] = dict(prog.times)
  res["reused_stages"] = sorted(prog.reused)
  res["wall_time_s"] = time.perf_counter() - t0
  figs = plots.lab_figures(res, os.path.join(workdir, "plots"))
  res["plots"] = figs
  write_results(res, workdir)
  prog.end("report")
  res["wall_time_s"] = time.perf_counter() - t0
  log(f"\nhhh.lab: done in {res['wall_time_s'] / 60:.1f} min; report: {os.path.join(workdir, 'report.md')}")
  return res


def eval_key(ec: ml_collections.ConfigDict) -> str:
  """What an evaluation's numbers depend on: its resolved config and the step of every checkpoint it reads."""
  steps = {k: eval_run.checkpoint_step(ec[k]) if ec[k] else 0
           for k in ("checkpoint", "pm_checkpoint", "distilled_checkpoint")}
  return hashlib.sha256((ec.to_json(sort_keys=True) + json.dumps(steps, sort_keys=True)).encode()).hexdigest()


def reusable_eval(out_dir: str, key: str) -> Optional[dict]:
  """The earlier eval.json of out_dir when it was written for `key` (same config, same checkpoints), else None."""
  key_file, res_file = os.path.join(out_dir, "lab_eval_key.txt"), os.path.join(out_dir, "eval.json")
  if not (os.path.exists(key_file) and os.path.exists(res_file)):
    return None
  with open(key_file) as f:
    if f.read().strip() != key:
      return None
  with open(res_file) as f:
    out = json.load(f)
  out["_reused"] = True
  return out


def final_loss(run_dir: str) -> Optional[float]:
  """The training loss smoothed over the run's last quarter of logged steps (the mean of the last quarter of the
  logged values, at least 1): one step's loss is noisy."""
  vals = [float(rec["train/loss"]) for rec in read_metrics(run_dir) if "train/loss" in rec]
  if not vals:
    return None
  k = max(len(vals) // 4, 1)
  return sum(vals[-k:]) / k


def logged_metrics(run_dir: str) -> dict:
  """The last logged value of every metric of a finished run (train/x as x, eval/x as eval/x, as train() returns)."""
  out: dict = {}
  for rec in read_metrics(run_dir):
    for k, v in rec.items():
      if k.startswith("train/"):
        out[k[len("train/"):]] = v
      elif k.startswith("eval/") or k == "step":
        out[k] = v
  return out


def sample_dialogues(size: str, p: dict, *, lm: str, distilled: str, out_dir: str) -> list:
  """Samples one response per held-out lab question (the first p["dialogues"] hhh-family test contexts) from the
  LM plain, after the HHH prompt, and distilled (hhh.sample; JSONL in out_dir); returns the records."""
  n = int(p["dialogues"])
  if n <= 0:
    return []
  questions = [c.context for c in lab_corpus.comparisons("test", families=("hhh",))[:n]]
  os.makedirs(out_dir, exist_ok=True)
  prompts_file = os.path.join(out_dir, "questions.jsonl")
  with open(prompts_file, "w", encoding="utf-8") as f:
    for q in questions:
      f.write(json.dumps(q) + "\n")
  out = []
  for cond, ckpt, prompt in (("plain", lm, "none"), ("prompt", lm, "hhh"), ("distilled", distilled, "none")):
    c = load_config("sample", size, p)
    with c.unlocked():
      c.checkpoint, c.prompts, c.format, c.prompt = ckpt, prompts_file, "raw", prompt
      c.prompt_max_tokens = p["prompt_tokens"] if prompt == "hhh" else 0
      c.max_new_tokens, c.temperature, c.top_p, c.seed = p["dialogue_tokens"], 0.7, 0.9, p["seed"]
    recs = sample_lib.sample_to_file(c, os.path.join(out_dir, f"{cond}.jsonl"), log=lambda s: None)
    out += [{"condition": cond, "context": r["context"], "sample": r["sample"], "stop_reason": r["stop_reason"]}
            for r in recs]
  return out


def bigbench_available() -> bool:
  from hhh.data import tasks  # TensorFlow: loaded only here; pylint: disable=g-import-not-at-top
  return os.path.exists(os.path.join(tasks.bigbench_dir(), "hhh_alignment", "task.json"))


def bigbench_howto() -> str:
  from hhh.data import tasks  # TensorFlow: loaded only here; pylint: disable=g-import-not-at-top
  d = tasks.bigbench_dir()
  return (f"BIG-bench data not found at {d}: the HHH evaluations and TruthfulQA were skipped. Get them with\n"
          + "".join(f"  curl -L --create-dirs -o {d}/hhh_alignment/{s}/task.json "
                    f"{sources.URLS['hhh_alignment'].format(subset=s)}\n" for s in sources.BIGBENCH_SUBSETS)
          + f"  curl -L --create-dirs -o {d}/hhh_alignment/task.json "
          + sources.URLS["hhh_alignment"].replace("{subset}/", "") + "\n"
          + f"  curl -L --create-dirs -o {d}/truthful_qa/task_mc.json {sources.URLS['truthful_qa_mc']}\n"
          + "(or set HHH_BIGBENCH_DIR) and rerun the same command.")

