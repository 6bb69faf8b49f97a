"""Runs one objective (or evaluation) over sizes of the ladder and over finetuning-set sizes; one JSON out.

  python tools/sweep.py --config=configs/preference.py --sizes=lab_s,lab_m,lab_l --workdir=/tmp/sweep_pm \
      --label="ranked PM" --steps=200 [--init_from=/tmp/lab/runs/pretrain_{size}] [--eval=compare]
  python tools/sweep.py --config=configs/finetune.py --arg=,lab --sizes=lab_l --examples=64,256,1024 \
      --init_from=/tmp/lab/runs/pmp_{size} --label=pmp --workdir=/tmp/sweep_ft
  python tools/sweep.py --eval_only --sizes=lab_s,lab_m --checkpoint=/tmp/lab/runs/pretrain_{size} \
      --pm_checkpoint=/tmp/lab/runs/preference_{size} --eval=hhh,truthfulqa --workdir=/tmp/sweep_eval
  python tools/plot.py /tmp/sweep_pm/sweep.json /tmp/sweep_ft/sweep.json --out=/tmp/plots

Runs go in-process through hhh.train.train (WORKDIR/<size>[_<examples>]; rerunning resumes). With --examples, a
run trains on that many examples (steps = examples / batch size) and reports the trainer's held-out accuracy.
With --eval, each run is evaluated by hhh.eval (score-head models as the `pm` condition, LMs as `plain`).
sweep.json: {"sizes": {size: non-embedding params}, "runs": [...], "objectives": {size: {label: accuracy}},
"pmp": {label: {examples: accuracy}}, "hhh": {size: conditions}, "tax": {size: the first tax task's result},
"calibration": {name: reliability bins of the preference/binary models}} - the keys tools/plot.py draws.
Extra `--config.*` overrides after `--` apply to every run.
"""
from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hhh.cli.quiet import quiet  # noqa: E402

quiet()  # start-up quieting, before jax and TensorFlow are imported

from absl import flags  # noqa: E402
from hhh import cli  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("config", "configs/preference.py", "Training config file (module with get_config).")
flags.DEFINE_string("arg", "", "Appended to the size in the config string, e.g. ',lab' or ',binary,lab'.")
flags.DEFINE_list("sizes", ["lab_s", "lab_m", "lab_l"], "Sizes of the ladder.")
flags.DEFINE_list("examples", [], "Finetuning-set sizes (examples); empty: one run per size with --steps.")
flags.DEFINE_integer("steps", 0, "Training steps per run (0: the config's).")
flags.DEFINE_integer("batch_size", 0, "Global batch (0: the config's).")
flags.DEFINE_string("init_from", "", "Checkpoint to start from; {size} is replaced by the size.")
flags.DEFINE_string("label", "", "Name of this series in the plots (default: the objective's name).")
flags.DEFINE_list("eval", [], "hhh.eval suites to run on each result (hhh, truthfulqa, compare, tax).")
flags.DEFINE_bool("eval_only", False, "No training: evaluate --checkpoint / --pm_checkpoint per size.")
flags.DEFINE_string("checkpoint", "", "LM checkpoint per size for --eval_only ({size} replaced).")
flags.DEFINE_string("pm_checkpoint", "", "Preference/binary checkpoint per size for --eval_only ({size} replaced).")
flags.DEFINE_string("distilled_checkpoint", "", "Distilled LM per size for --eval_only ({size} replaced).")
flags.DEFINE_string("tax_tasks", "tax_lab_lambada", "Capability tasks of the tax suite (the TFDS ones need their "
                    "data: tax_lambada,tax_hellaswag,...); the first one goes to sweep.json's `tax`.")
flags.DEFINE_string("tax_split", "test", "Split of the tax tasks (the TFDS benchmarks: validation).")
flags.DEFINE_integer("max_examples", 240, "Examples of compare/tax tasks per evaluation (0: all).")
flags.DEFINE_string("workdir", None, "Sweep directory.")
flags.mark_flag_as_required("workdir")


def apply_overrides(c, overrides):
  """--config.a.b=v pairs after `--` (hhh.config.override: JSON values, unknown keys fail)."""
  from hhh import config as hc  # pylint: disable=g-import-not-at-top
  pairs = {}
  for o in overrides:
    if not o.startswith("--config.") or "=" not in o:
      raise ValueError(f"unexpected argument {o!r}; overrides look like --config.train.steps=10")
    key, val = o[len("--config."):].split("=", 1)
    pairs[key] = val
  hc.override(c, pairs)


def run_eval(size, workdir, suites, *, checkpoint="", pm="", distilled=""):
  from configs import eval as eval_cfg  # pylint: disable=g-import-not-at-top
  from hhh.eval import run  # pylint: disable=g-import-not-at-top
  c = eval_cfg.get_config(size)
  with c.unlocked():
    c.checkpoint, c.pm_checkpoint, c.distilled_checkpoint = checkpoint, pm, distilled
    c.eval.suites = ",".join(suites)
    c.eval.max_examples = FLAGS.max_examples
    c.eval.tax_tasks, c.eval.tax_split = FLAGS.tax_tasks, FLAGS.tax_split
  return run.evaluate(c, workdir)


def main(argv):
  from hhh import config as hc  # pylint: disable=g-import-not-at-top
  from hhh import train as train_lib  # pylint: disable=g-import-not-at-top
  from hhh.models.transformer import TransformerConfig  # pylint: disable=g-import-not-at-top
  overrides = argv[1:]
  out = {"sizes": {}, "runs": [], "objectives": {}, "pmp": {}, "hhh": {}, "tax": {}, "calibration": {},
         "argv": sys.argv}

  def collect(size, res):
    for k, v in res.get("calibration", {}).items():  # preference/binary models: sigmoid(score difference) per pair
      if k.endswith("pm_pairs"):
        out["calibration"][f"{size}/{FLAGS.label or 'pm'}/{k}"] = v
    if "hhh" in res:
      out["hhh"][size] = res["hhh"]["conditions"]
    tax = [t for t in FLAGS.tax_tasks.split(",") if t.strip() in res.get("tax", {})]
    if tax:
      out["tax"][size] = res["tax"][tax[0].strip()]

  os.makedirs(FLAGS.workdir, exist_ok=True)
  for size in FLAGS.sizes:
    out["sizes"][size] = TransformerConfig.from_config(hc.model_config(size)).non_embedding_params()
    if FLAGS.eval_only:
      res = run_eval(size, os.path.join(FLAGS.workdir, f"eval_{size}"), FLAGS.eval or ["hhh"],
                     checkpoint=FLAGS.checkpoint.format(size=size), pm=FLAGS.pm_checkpoint.format(size=size),
                     distilled=FLAGS.distilled_checkpoint.format(size=size))
      out["runs"].append({"size": size, "eval": res})
      collect(size, res)
      continue
    for n in ([int(e) for e in FLAGS.examples] or [0]):
      c = hc.load(f"{FLAGS.config}:{size}{FLAGS.arg}")
      with c.unlocked():
        apply_overrides(c, overrides)
        if FLAGS.batch_size:
          c.train.batch_size = FLAGS.batch_size
        if FLAGS.steps:
          c.train.steps = FLAGS.steps
        if n:
          c.train.steps = max(n // int(c.train.batch_size), 1)
          c.train.eval_every = int(c.train.steps)
        c.init_from = FLAGS.init_from.format(size=size)
      label = FLAGS.label or c.objective.name
      name = f"{size}_{n}" if n else size
      metrics = train_lib.train(c, os.path.join(FLAGS.workdir, name))
      run_out = {"size": size, "examples": n, "label": label,
                 "metrics": {k: v for k, v in metrics.items() if isinstance(v, (int, float))}}
      acc = metrics.get("eval/accuracy")
      if FLAGS.eval:
        pm = bool(c.model.score_head)
        res = run_eval(size, os.path.join(FLAGS.workdir, f"eval_{name}"), FLAGS.eval,
                       checkpoint="" if pm else os.path.join(FLAGS.workdir, name),
                       pm=os.path.join(FLAGS.workdir, name) if pm else "")
        run_out["eval"] = res
        cmp = res.get("compare", {}).get("lab_compare", {}).get("conditions", {})
        if cmp:
          acc = cmp["pm"]["score"] if pm else cmp["plain"]["mean"]
        collect(size, res)
      out["runs"].append(run_out)
      if n:
        out["pmp"].setdefault(label, {})[n] = acc
      elif acc is not None:
        out["objectives"].setdefault(size, {})[label] = acc
  path = os.path.join(FLAGS.workdir, "sweep.json")
  with open(path, "w") as f:
    json.dump(out, f, indent=1, default=str)
  print(f"sweep: {len(out['runs'])} runs; results in {path}; plot with python tools/plot.py {path}")


if __name__ == "__main__":
  cli.run(main)
