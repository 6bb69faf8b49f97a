"""The laboratory's settings: the presets of configs/lab.py (`default_config`, `preset_from_argv`), the settings as
the stages use them (`resolve`), and the project config of each stage with the lab's overrides: training runs
(`run_config`, on top of `short_run`, the few settings every short run changes, which tools/lab_check.py and
tools/transfer_sweep.py use too) and evaluations (`eval_config`), all with the preset's model vocabulary
(`load_config`). The names the stages share (the finetuning grid's run names, the held-out tasks) live here too.
"""
from __future__ import annotations

from typing import Optional

import ml_collections

from hhh import config as hc
from hhh.core import errors
from hhh.data import vocab as vocab_lib

TAX_TASK = "tax_lab_lambada"  # the alignment tax on the embedded corpus (held-out lab dialogues, LAMBADA's format)
FINETUNE_TASK, FINETUNE_SPLIT = "lab_compare_hhh", "test"  # finetuned PMs: rates picked on validation, scored on test


def default_config(preset: str = "default") -> ml_collections.ConfigDict:
  """The lab's settings of `preset` (configs/lab.py:PRESET); `--config.preset=smoke` on the command line picks it."""
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
  load_config("pretrain", out["sizes"][0], out)  # the model vocabulary against the data's, before any stage runs
  return out


def load_config(module: str, arg: str, p: Optional[dict] = None) -> ml_collections.ConfigDict:
  """configs/<module>.py of this checkout (hhh.config.load: the lab works from any current directory), with the
  preset's model vocabulary (p["vocab_size"]; 0 keeps the size's own) so that every stage of a size, training,
  evaluation and sampling, builds the same model."""
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


def short_run(c: ml_collections.ConfigDict, *, steps: int, log_every: int, eval_every: int = 0,
              checkpoint_every: int = 10 ** 9, max_warmup: Optional[int] = None) -> ml_collections.ConfigDict:
  """Sets an unlocked config up for a short run, in place (returns `c`): `steps` steps, a log line every `log_every`
  steps, a held-out evaluation every `eval_every` (0: none before the last step), a checkpoint every
  `checkpoint_every` (the default: only the last), saved synchronously (the next run reads it at once), and the
  warmup cut to `max_warmup` steps when given. The lab's runs (`run_config`), tools/lab_check.py and
  tools/transfer_sweep.py all set these through here."""
  c.train.steps = int(steps)
  c.train.log_every = log_every
  c.train.eval_every = eval_every
  c.train.checkpoint_every = checkpoint_every
  c.train.async_checkpoints = False
  if max_warmup is not None:
    c.optim.warmup_steps = min(int(c.optim.warmup_steps), max_warmup)
  return c


def run_config(module: str, arg: str, p: dict, *, steps: int, init_from: str = "", lr_factor: float = 1.0,
               eval_every: int = 0, eval_batches: int = 4) -> ml_collections.ConfigDict:
  """A project config (configs/<module>.py:<arg>) with the lab's batch, length and step overrides; every run
  evaluates its held-out split at its last step (eval_every=0) or every `eval_every` steps."""
  c = load_config(module, arg, p)
  with c.unlocked():
    c.seed = p["seed"]
    short_run(c, steps=steps, log_every=max(int(steps) // 10, 1),  # enough points for a smoothed final loss
              eval_every=int(eval_every) or int(steps), checkpoint_every=int(steps),
              max_warmup=max(int(steps) // 10, 1))
    c.train.batch_size = p["batch_size"]
    c.train.grad_accum = 1  # the lab's batches are small: one microbatch (paper sizes default to one per device)
    c.data.seq_len = p["seq_len"]
    c.train.eval_batches = eval_batches
    c.train.keep_checkpoints = 1
    c.optim.lr = float(c.optim.lr) * lr_factor
    c.init_from = init_from
    # The embedded data is generated i.i.d., so its source order is already random; a 10k-example shuffle buffer
    # would cost ~10x the first batch's time in every one of the lab's short runs.
    c.data.shuffle = False
    if "prompt_max_tokens" in c.objective:  # distil the same prompt the evaluation's "prompt" condition uses
      c.objective.prompt_max_tokens = p["prompt_tokens"]
  return c


def eval_config(size, p, *, checkpoint, pm, suites, distilled="", conditions="plain,prompt,distilled,pm"):
  """The evaluation config of a size (configs/eval.py) with the lab's tasks, example counts and lengths."""
  c = load_config("eval", size, p)
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


def finetune_run_name(label: str, size: str, n: int, factor: float) -> str:
  """One run of the finetuning grid (DIR/runs/<name>): arm (pmp / no_pmp), size, examples, rate factor."""
  return f"finetune_{label}_{size}_{n}_lr{factor:g}x"
