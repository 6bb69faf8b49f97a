"""The command `python -m hhh.train --config=FILE:SIZE --workdir=DIR [--config.a.b=v ...]`: its flags, and one
training run (hhh.train.loop.train) of the config in the workdir, through hhh.cli's shared command plumbing."""

from __future__ import annotations

import logging

from absl import flags
from ml_collections import config_flags

from hhh import cli
from hhh.train.loop import train


def main(argv=None):
  config_flag = config_flags.DEFINE_config_file(
      "config", None, "Config file and model size, e.g. configs/pretrain.py:tiny. Any field can be overridden: "
      "--config.train.steps=100 --config.optim.lr=1e-3 (unknown keys are errors).", lock_config=True)
  flags.DEFINE_string("workdir", None, "Run directory: config.json, metrics, TensorBoard events, checkpoints. "
                      "An existing workdir is resumed from its latest checkpoint.")
  flags.mark_flags_as_required(["config", "workdir"])

  def run(_):
    logging.getLogger("absl").setLevel(logging.WARNING)
    train(config_flag.value, flags.FLAGS.workdir)

  cli.run(run, argv=argv, config_example="configs/pretrain.py:tiny")
