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
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from typing import Callable, Optional

import ml_collections

from hhh.core import errors
from hhh.core import paths

def default_config(preset: str = "default") -> ml_collections.ConfigDict:
  """The lab's settings of `preset` (configs/lab.py:PRESET); `--config.preset=smoke` on the command line picks it."""
  from hhh import config as hc  # pylint: disable=g-import-not-at-top
  return hc.load(f"lab:{preset}")


def preset_from_argv(argv) -> str:
  """The preset named by --config.preset=X (or --config.preset X) among command-line arguments ("default" if none),
  read before the flags are parsed so that every other --config.* override applies on top of that preset."""
  for i, a in enumerate(argv):
    if a.startswith("--config.preset="):
      return a.split("=", 1)[1]
    if a == "--config.preset" and i + 1 < len(argv):
      return argv[i + 1]
  return "default"


@contextlib.contextmanager
def compile_cache(directory: str, log: Callable[[str], None] = print):
  """JAX's persistent compilation cache in `directory` for the block (unless JAX_COMPILATION_CACHE_DIR or the jax
  config already name one), then the process's previous setting: the lab's stages run in one process but each builds
  its own jitted functions, so stages with the same shapes (the finetuning grid's runs and evaluations, a size's LM
  and PM scoring, every rerun) compiled the same programs again. A cached executable is the one XLA built, so the
  numbers do not change (docs/lab.md)."""
  import jax  # pylint: disable=g-import-not-at-top
  from jax._src import compilation_cache as cc  # pylint: disable=g-import-not-at-top

  def reset():  # quietly: jax logs every reset at INFO
    quiet = logging.getLogger(cc.__name__)
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    try:
      cc.reset_cache()
    finally:
      quiet.setLevel(level)

  if os.environ.get("JAX_COMPILATION_CACHE_DIR") or jax.config.jax_compilation_cache_dir:
    yield jax.config.jax_compilation_cache_dir
    return
  os.makedirs(directory, exist_ok=True)
  before = jax.config.jax_persistent_cache_min_compile_time_secs
  jax.config.update("jax_compilation_cache_dir", directory)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
  reset()  # a compilation earlier in this process would otherwise have settled "no cache" for good
  log(f"hhh.lab: compiled programs are cached in {directory} (--config.compile_cache=0 turns this off)")
  try:
    yield directory
  finally:
    jax.config.update("jax_compilation_cache_dir", None)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", before)
    reset()


def resolve(config: ml_collections.ConfigDict) -> dict:
  """The settings as run_lab uses them: lists parsed, switches (0/1) as booleans, pmp_size checked against sizes."""
  out = config.to_dict()
  for k in ("hhh", "truthfulqa", "compile_cache"):
    out[k] = bool(out[k])
  out["sizes"] = [s.strip() for s in out["sizes"].split(",") if s.strip()]
  out["finetune_examples"] = [int(n) for n in str(out["finetune_examples"]).split(",") if n.strip()]
  out["finetune_lr_factors"] = [float(f) for f in str(out["finetune_lr_factors"]).split(",") if f.strip()]
  if not out["finetune_lr_factors"] or min(out["finetune_lr_factors"]) <= 0:
    raise ValueError(f"finetune_lr_factors must be positive multiples of the finetuning rate, e.g. '1,10'; got "
                     f"{out['finetune_lr_factors']}")
  if not out["pmp_size"] or out["pmp_size"] not in out["sizes"]:  # PMP needs that size's pretrained LM
    out["pmp_size"] = out["sizes"][-1]
  out["seed"] = int(config.seed)
  out["seeds"] = int(config.seeds)
  if out["seeds"] < 1:
    raise ValueError(f"--config.seeds must be >= 1 (how many times every stage runs, with seeds seed, seed+1, ...), "
                     f"got {config.seeds}")
  out["preset"] = config.preset
  out["vocab_size"] = int(config.vocab_size)
  if out["vocab_size"] < 0:
    raise errors.ConfigError(f"--config.vocab_size must be 0 (each size's own) or the model's vocabulary, got "
                             f"{config.vocab_size}")
  _load_config("pretrain", out["sizes"][0], out)  # the model vocabulary against the data's, before any stage runs
  return out


TAX_TASK = "tax_lab_lambada"  # the alignment tax on the embedded corpus (held-out lab dialogues, LAMBADA's format)
def _load_config(module: str, arg: str, p: Optional[dict] = None) -> ml_collections.ConfigDict:
  """configs/<module>.py of this checkout (hhh.config.load: the lab works from any current directory), with the
  preset's model vocabulary (p["vocab_size"]; 0 keeps the size's own) so that every stage of a size, training,
  evaluation and sampling, builds the same model."""
  from hhh import config as hc  # pylint: disable=g-import-not-at-top
  from hhh.data import vocab as vocab_lib  # pylint: disable=g-import-not-at-top
  c = hc.load(f"{module}:{arg}")
  vocab_size = int((p or {}).get("vocab_size", 0))
  if vocab_size:
    needed = vocab_lib.vocab_size(c.data.vocab)
    if vocab_size < needed:
      raise errors.ConfigError(f"--config.vocab_size={vocab_size} is smaller than the lab data's vocabulary "
                               f"({c.data.vocab!r}: {needed} ids, end-of-context included)")
    with c.unlocked():
      c.model.vocab_size = vocab_size
  return c


def run_config(module: str, arg: str, p: dict, *, steps: int, init_from: str = "", lr_factor: float = 1.0,
               eval_every: int = 0, eval_batches: int = 4) -> ml_collections.ConfigDict:
  """A project config (configs/<module>.py:<arg>) with the lab's batch, length and step overrides; every run
  evaluates its held-out split at its last step (eval_every=0) or every `eval_every` steps."""
  c = _load_config(module, arg, p)
  with c.unlocked():
    c.seed = p["seed"]
    c.train.steps = int(steps)
    c.train.batch_size = p["batch_size"]
    c.train.grad_accum = 1  # the lab's batches are small: one microbatch (paper sizes default to one per device)
    c.data.seq_len = p["seq_len"]
    c.train.log_every = max(int(steps) // 10, 1)  # enough points for a smoothed final loss
    c.train.eval_every = int(eval_every) or int(steps)
    c.train.eval_batches = eval_batches
    c.train.checkpoint_every = int(steps)
    c.train.keep_checkpoints = 1
    c.train.async_checkpoints = False
    c.optim.warmup_steps = min(int(c.optim.warmup_steps), max(int(steps) // 10, 1))
    c.optim.lr = float(c.optim.lr) * lr_factor
    c.init_from = init_from
    # The embedded data is generated i.i.d., so its source order is already random; a 10k-example shuffle buffer
    # would cost ~10x the first batch's time in every one of the lab's short runs.
    c.data.shuffle = False
    if "prompt_max_tokens" in c.objective:  # distil the same prompt the evaluation's "prompt" condition uses
      c.objective.prompt_max_tokens = p["prompt_tokens"]
  return c


class Progress:
  """One line per stage with elapsed time and an estimate of what is left (the trainer prints its own steps).

  Each stage has an a-priori cost (seconds at a nominal speed: a fixed start-up plus its FLOPs, `stage_cost`); the
  time left is the remaining stages' cost scaled by how fast the stages that ran so far went against their estimate
  (stages reused from an earlier run take ~0 s and are left out of that ratio). Stage times are kept in
  DIR/stage_times.json: a rerun that reuses a stage keeps the time it took when it ran."""

  def __init__(self, costs: dict, times_file: str = "", label: str = ""):
    self.costs, self.total, self.done, self.t0 = dict(costs), len(costs), 0, time.perf_counter()
    self.label = label
    self.times: dict = {}
    self.reused: set = set()
    self._ran_cost = self._ran_time = 0.0
    self._left = float(sum(self.costs.values()))
    self.times_file = times_file
    self._stored = {}
    if times_file and os.path.exists(times_file):
      with open(times_file) as f:
        self._stored = json.load(f)

  def eta_s(self) -> Optional[float]:
    if self._ran_cost <= 0:
      return None
    return self._left * self._ran_time / self._ran_cost

  def start(self, name: str, what: str):
    el = time.perf_counter() - self.t0
    eta = self.eta_s()
    eta = "" if eta is None else f", ~{eta / 60:.1f} min left"
    print(f"\n=== lab {self.label}[{self.done + 1}/{self.total}] {name}: {what} (elapsed {el / 60:.1f} min{eta})",
          flush=True)
    self._t = time.perf_counter()

  def end(self, name: str, summary: str = "", *, reused: bool = False):
    dt = time.perf_counter() - self._t
    cost = float(self.costs.get(name, 0.0))
    self._left = max(self._left - cost, 0.0)
    self.done += 1
    if reused and name in self._stored:
      self.times[name] = float(self._stored[name])
      self.reused.add(name)
      print(f"=== lab {name} reused from an earlier run (it took {self.times[name]:.0f}s then) {summary}", flush=True)
    else:
      self.times[name] = dt
      if not reused:
        self._ran_cost += cost
        self._ran_time += dt
      print(f"=== lab {name} done in {dt:.0f}s {summary}", flush=True)
    if self.times_file:
      self._stored[name] = self.times[name]
      tmp = self.times_file + ".tmp"
      with open(tmp, "w") as f:
        json.dump(self._stored, f, indent=1)
      os.replace(tmp, self.times_file)


# The cost model's two constants, fitted by least squares to the 30 stage times of a default run on a 2-core CPU
# (11.8 s per stage, 27.7 GFLOP/s); only the ratios between stages matter, the measured speed of the stages that ran
# rescales them.
NOMINAL_FLOPS = 28e9  # FLOP/s
STAGE_STARTUP_S = 12.0  # compiling and loading, per stage (per condition for evaluations)


def stage_costs(p: dict) -> dict:
  """{stage: estimated seconds at NOMINAL_FLOPS}: training 6 N T (K responses per comparison for the preference
  stages), evaluation 2 N T over the scored rows and the sampled tokens, plus STAGE_STARTUP_S each."""
  sizes, big, pmp_size = p["sizes"], p["sizes"][-1], p["pmp_size"]
  n = {s: _param_count(s) for s in sizes}
  tok = p["batch_size"] * p["seq_len"]
  out = {}

  def train(name, size, steps, k=1):
    out[name] = STAGE_STARTUP_S + 6 * n[size] * tok * k * steps / NOMINAL_FLOPS

  for s in sizes:
    train(f"pretrain_{s}", s, p["pretrain_steps"])
  for s in sizes:
    train(f"imitation_{s}", s, p["objective_steps"])
    train(f"binary_{s}", s, p["objective_steps"], 2)
    train(f"preference_{s}", s, p["objective_steps"], 4)
  train(f"pmp_{pmp_size}", pmp_size, p["pmp_steps"], 2)
  for k in p["finetune_examples"]:
    for label in ("pmp", "no_pmp"):
      for f in p["finetune_lr_factors"]:
        name = finetune_run_name(label, pmp_size, k, f)
        train(name, pmp_size, max(k // p["batch_size"], 1), 4)
        out[f"eval_{name}"] = STAGE_STARTUP_S + (
            2 * n[pmp_size] * p["finetune_eval_examples"] * 4 * p["eval_seq_len"] / 2 / NOMINAL_FLOPS)
  train(f"distill_{big}", big, p["distill_steps"], 2)
  half = p["eval_seq_len"] / 2  # rows are bucketed by length: about half the cap on average
  hhh_rows = 221 * 2 * 4 if p["hhh"] else 0  # plain, prompt (its rows as long again with the prompt), null, PM
  for s in sizes:
    rows = p["compare_examples"] * 4 * 2 + hhh_rows + p["compare_examples"] * 3
    sampled = p["toxicity_prompts"] * p["toxicity_samples"] * p["toxicity_tokens"] * (3 if s == big else 2)
    out[f"eval_{s}"] = 4 * STAGE_STARTUP_S + 2 * n[s] * (rows * half + sampled * 64) / NOMINAL_FLOPS
    out[f"eval_objectives_{s}"] = STAGE_STARTUP_S + 2 * n[s] * p["compare_examples"] * 4 * 2 * half / NOMINAL_FLOPS
  out["dialogues"] = STAGE_STARTUP_S + 2 * n[big] * p["dialogues"] * 3 * p["dialogue_tokens"] * 64 / NOMINAL_FLOPS
  out["report"] = 2.0
  return out


def _param_count(size: str) -> int:
  from hhh import config as hc  # pylint: disable=g-import-not-at-top
  from hhh.models.transformer import TransformerConfig  # pylint: disable=g-import-not-at-top
  return TransformerConfig.from_config(hc.model_config(size)).non_embedding_params()


def bigbench_available() -> bool:
  from hhh.data import tasks  # pylint: disable=g-import-not-at-top
  return os.path.exists(os.path.join(tasks.bigbench_dir(), "hhh_alignment", "task.json"))


def run_lab(config: ml_collections.ConfigDict, workdir: str, log: Callable[[str], None] = print) -> dict:
  """Runs the laboratory in `workdir` (see the module docstring). With --config.seeds=N > 1 every stage runs N times
  with seeds seed, seed+1, ... (the first in `workdir` itself, the others in `workdir/seed_<seed>`, each with its own
  report), and `workdir/report.md` adds the spread across seeds of every headline number and of the paper-vs-run
  differences."""
  p = resolve(config)
  workdir = paths.resolve(workdir)  # the runs' checkpoints need absolute paths; resolve once, here
  seeds = [p["seed"] + i for i in range(p["seeds"])]
  t0 = time.perf_counter()
  results = []
  with (compile_cache(os.path.join(workdir, "jax_cache"), log) if p["compile_cache"] else contextlib.nullcontext()):
    for i, seed in enumerate(seeds):
      label = f"seed {seed} ({i + 1}/{len(seeds)}) " if len(seeds) > 1 else ""
      results.append(_run_seed(dict(p, seed=seed), workdir if i == 0 else os.path.join(workdir, f"seed_{seed}"), log,
                               label=label))
  res = results[0]
  if len(seeds) > 1:
    from hhh.lab import seeds as seeds_lib  # pylint: disable=g-import-not-at-top
    res["across_seeds"] = seeds_lib.summary(results, seeds)
    from hhh.lab import findings  # pylint: disable=g-import-not-at-top
    res["findings"] = findings.findings(res, runs=results)  # verdicts over seeds and examples
    res["wall_time_s"] = time.perf_counter() - t0
    with open(os.path.join(workdir, "lab.json"), "w") as f:
      json.dump(res, f, indent=1, default=str)
    with open(os.path.join(workdir, "report.md"), "w") as f:
      f.write(report_markdown(res))
    log(f"\nhhh.lab: {len(seeds)} seeds done in {res['wall_time_s'] / 60:.1f} min; report: "
        f"{os.path.join(workdir, 'report.md')}")
  return res


def _run_seed(p: dict, workdir: str, log: Callable[[str], None], *, label: str = "") -> dict:
  """Every stage of the laboratory for one seed (p: resolve()'s settings) in `workdir`."""
  from hhh import train as train_lib  # pylint: disable=g-import-not-at-top
  from hhh.eval import run as eval_run  # pylint: disable=g-import-not-at-top
  from hhh.lab import plots  # pylint: disable=g-import-not-at-top
  from hhh.eval import code as code_eval  # pylint: disable=g-import-not-at-top

  t0 = time.perf_counter()
  sizes, big, pmp_size = p["sizes"], p["sizes"][-1], p["pmp_size"]
  runs = os.path.join(workdir, "runs")
  os.makedirs(workdir, exist_ok=True)
  have_bb = bigbench_available() and (p["hhh"] or p["truthfulqa"])
  prog = Progress(stage_costs(p), os.path.join(workdir, "stage_times.json"), label=label)
  res: dict = {"preset": p, "sizes": {s: _param_count(s) for s in sizes}, "train": {}, "objectives": {},
               "objectives_ci": {}, "hhh": {}, "truthfulqa": {}, "tax": {}, "toxicity": {}, "code": {},
               "pmp": {"pmp": {}, "no_pmp": {}}, "pmp_ci": {"pmp": {}, "no_pmp": {}}, "calibration": {}, "ece": {},
               "examples": {"objectives": {}, "pmp": {"pmp": {}, "no_pmp": {}}}}

  def train(name, cfg, what):
    prog.start(name, what)
    out = train_lib.train(cfg, os.path.join(runs, name))
    reused = "loss" not in out
    if reused:  # finished earlier (a rerun resumes): its numbers come from the run's metrics.jsonl
      out = {**_logged_metrics(os.path.join(runs, name)), **out}
    if out.get("preempted"):  # SIGTERM: the run saved its state; stop here, the same command resumes
      raise SystemExit(f"hhh.lab: {name} was preempted and saved; rerun the same command to resume")
    res["train"][name] = {k: v for k, v in out.items() if isinstance(v, (int, float))}
    res["train"][name]["final_loss"] = _final_loss(os.path.join(runs, name))
    prog.end(name, f"(loss {out.get('loss', float('nan')):.3f})", reused=reused)
    return os.path.join(runs, name)

  def run_eval(name, ec, what):
    """hhh.eval in DIR/eval/<name> (stage eval_<name>), reused when an earlier run evaluated the same checkpoints
    with the same config."""
    prog.start(f"eval_{name}", what)
    out_dir = os.path.join(workdir, "eval", name)
    key = _eval_key(ec)
    out = _reusable_eval(out_dir, key)
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
                  f"pretrain a {_param_count(s):,}-parameter LM on lab_lm")
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
        ec = _eval_config(pmp_size, p, checkpoint="", pm=run, suites="compare", conditions="pm")
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
  suites = ["compare", "tax", "toxicity"] + (["hhh"] if have_bb and p["hhh"] else []) + (["truthfulqa"] if have_bb and p["truthfulqa"]
                                                                      else []) + (["code"] if p["code_problems"] else [])
  if not have_bb:
    res["bigbench_missing"] = bigbench_howto()
    log(res["bigbench_missing"])
  for s in sizes:
    # TruthfulQA (299 questions x up to 13 choices x 4 conditions) only at the largest size: the time budget
    own = [x for x in suites if x != "truthfulqa" or s == big]
    ec = _eval_config(s, p, checkpoint=lm[s], pm=objs[(s, "preference")],
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

    ec = _eval_config(s, p, checkpoint=objs[(s, "imitation")], pm=objs[(s, "binary")], suites="compare",
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
  from hhh.lab import findings  # pylint: disable=g-import-not-at-top
  res["findings"] = findings.findings(res)
  res["stage_times_s"] = dict(prog.times)
  res["reused_stages"] = sorted(prog.reused)
  res["wall_time_s"] = time.perf_counter() - t0
  figs = plots.lab_figures(res, os.path.join(workdir, "plots"))
  res["plots"] = figs
  with open(os.path.join(workdir, "lab.json"), "w") as f:
    json.dump(res, f, indent=1, default=str)
  with open(os.path.join(workdir, "report.md"), "w") as f:
    f.write(report_markdown(res))
  prog.end("report")
  res["wall_time_s"] = time.perf_counter() - t0
  log(f"\nhhh.lab: done in {res['wall_time_s'] / 60:.1f} min; report: {os.path.join(workdir, 'report.md')}")
  return res


FINETUNE_TASK, FINETUNE_SPLIT = "lab_compare_hhh", "test"  # finetuned PMs: rates picked on validation, scored on test


def finetune_run_name(label: str, size: str, n: int, factor: float) -> str:
  return f"finetune_{label}_{size}_{n}_lr{factor:g}x"


def _eval_key(ec: ml_collections.ConfigDict) -> str:
  """What an evaluation's numbers depend on: its resolved config and the step of every checkpoint it reads."""
  import hashlib  # pylint: disable=g-import-not-at-top
  from hhh.eval import run as eval_run  # pylint: disable=g-import-not-at-top
  steps = {k: eval_run.checkpoint_step(ec[k]) if ec[k] else 0
           for k in ("checkpoint", "pm_checkpoint", "distilled_checkpoint")}
  return hashlib.sha256((ec.to_json(sort_keys=True) + json.dumps(steps, sort_keys=True)).encode()).hexdigest()


def _reusable_eval(out_dir: str, key: str) -> Optional[dict]:
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


def _final_loss(run_dir: str) -> Optional[float]:
  """The training loss smoothed over the run's last quarter of logged steps (the mean of the last quarter of the
  logged values, at least 1): one step's loss is noisy."""
  path = os.path.join(run_dir, "metrics.jsonl")
  if not os.path.exists(path):
    return None
  vals = []
  with open(path) as f:
    for line in f:
      rec = json.loads(line)
      if "train/loss" in rec:
        vals.append(float(rec["train/loss"]))
  if not vals:
    return None
  k = max(len(vals) // 4, 1)
  return sum(vals[-k:]) / k


def _logged_metrics(run_dir: str) -> dict:
  """The last logged value of every metric of a finished run (train/x as x, eval/x as eval/x, as train() returns)."""
  out: dict = {}
  path = os.path.join(run_dir, "metrics.jsonl")
  if not os.path.exists(path):
    return out
  with open(path) as f:
    for line in f:
      rec = json.loads(line)
      for k, v in rec.items():
        if k.startswith("train/"):
          out[k[len("train/"):]] = v
        elif k.startswith("eval/") or k == "step":
          out[k] = v
  return out


def sample_dialogues(size: str, p: dict, *, lm: str, distilled: str, out_dir: str) -> list:
  """Samples one response per held-out lab question (the first p["dialogues"] hhh-family test contexts) from the
  LM plain, after the HHH prompt, and distilled (hhh.sample; JSONL in out_dir); returns the records."""
  from hhh.sampling import sample as sample_lib  # pylint: disable=g-import-not-at-top
  from hhh.data import lab_corpus  # pylint: disable=g-import-not-at-top
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
    c = _load_config("sample", size, p)
    with c.unlocked():
      c.checkpoint, c.prompts, c.format, c.prompt = ckpt, prompts_file, "raw", prompt
      c.prompt_max_tokens = p["prompt_tokens"] if prompt == "hhh" else 0
      c.max_new_tokens, c.temperature, c.top_p, c.seed = p["dialogue_tokens"], 0.7, 0.9, p["seed"]
    recs = sample_lib.sample_to_file(c, os.path.join(out_dir, f"{cond}.jsonl"), log=lambda s: None)
    out += [{"condition": cond, "context": r["context"], "sample": r["sample"], "stop_reason": r["stop_reason"]}
            for r in recs]
  return out


def _eval_config(size, p, *, checkpoint, pm, suites, distilled="", conditions="plain,prompt,distilled,pm"):
  c = _load_config("eval", size, p)
  with c.unlocked():
    c.checkpoint, c.pm_checkpoint, c.distilled_checkpoint = checkpoint, pm, distilled
    c.eval.suites, c.eval.conditions = suites, conditions
    c.eval.compare_tasks = "lab_compare"
    c.eval.compare_conditions = "plain,pm"  # the objectives table; prompt/distilled are compared on HHH
    c.eval.compare_mi = False  # the objectives table ranks LMs by mean log-prob: no null-context pass
    c.eval.tax_tasks, c.eval.tax_split = TAX_TASK, "test"
    c.eval.max_examples = p["compare_examples"]
    c.eval.batch_size = 64  # rows per forward pass
    c.eval.seq_len = p["eval_seq_len"]
    c.eval.prompt_max_tokens = p["prompt_tokens"]
    c.eval.step = 0
    # toxicity: the embedded prompts (RealToxicityPrompts' format), the default offline scorer
    c.eval.toxicity_prompts, c.eval.toxicity_max_prompts = "embedded", p["toxicity_prompts"]
    c.eval.toxicity_samples, c.eval.toxicity_max_new_tokens = p["toxicity_samples"], p["toxicity_tokens"]
    c.eval.toxicity_seed = p["seed"]
    c.eval.code_mode, c.eval.code_problems, c.eval.code_ks = "pool", p["code_problems"], "1"
  return c


def bigbench_howto() -> str:
  from hhh.data import sources, tasks  # pylint: disable=g-import-not-at-top
  d = tasks.bigbench_dir()
  return (f"BIG-bench data not found at {d}: the HHH evaluations and TruthfulQA were skipped. Get them with\n"
          + "".join(f"  curl -L --create-dirs -o {d}/hhh_alignment/{s}/task.json "
                    f"{sources.URLS['hhh_alignment'].format(subset=s)}\n" for s in sources.BIGBENCH_SUBSETS)
          + f"  curl -L --create-dirs -o {d}/hhh_alignment/task.json "
          + sources.URLS["hhh_alignment"].replace("{subset}/", "") + "\n"
          + f"  curl -L --create-dirs -o {d}/truthful_qa/task_mc.json {sources.URLS['truthful_qa_mc']}\n"
          + "(or set HHH_BIGBENCH_DIR) and rerun the same command.")


def report_markdown(res: dict) -> str:
  """DIR/report.md's text (hhh.lab.report)."""
  from hhh.lab import report as lab_report  # pylint: disable=g-import-not-at-top
  return lab_report.report_markdown(res)


def main(argv=None):
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top

  from hhh import cli  # pylint: disable=g-import-not-at-top  (the commands' layer, above this one)

  import sys  # pylint: disable=g-import-not-at-top
  try:
    defaults = default_config(preset_from_argv(sys.argv if argv is None else argv))
  except ValueError as e:
    sys.exit(f"error: {e}")
  try:  # ml_collections applies --config.* overrides here: an unknown setting is a usage error, not a traceback
    config_flag = config_flags.DEFINE_config_dict("config", defaults, "Lab settings (configs/lab.py), e.g. "
                                                  "--config.preset=smoke --config.sizes=tiny,lab_s")
  except (AttributeError, KeyError) as e:
    key, _, hint = str(e).replace("\\n", " ").replace("\\", "").replace("'", "").partition(" ")
    sys.exit(f"error: unknown lab setting --config.{key}. {hint} (the settings: configs/lab.py)")
  cli.config_command(argv, run_lab, config_flag=config_flag, required=["workdir"], strings=[
      ("workdir", None, "Where runs/, eval/, plots/, lab.json and report.md go (rerun = resume).")])


if __name__ == "__main__":
  main()
