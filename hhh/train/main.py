"""The command `python -m hhh.train --config=FILE:SIZE --workdir=DIR [--config.a.b=v ...]`: its flags, and one
training run (hhh.train.loop.train) of the config in the workdir, through hhh.cli's shared command plumbing."""

from __future__ import annotations

from hhh import cli
from hhh.train.loop import train


def main(argv=None):
  cli.config_command(
      argv, train, config_help="Config file and model size, e.g. configs/pretrain.py:tiny. Any field can be "
      "overridden: --config.train.steps=100 --config.optim.lr=1e-3 (unknown keys are errors).",
      strings=[("workdir", None, "Run directory: config.json, metrics, TensorBoard events, checkpoints. An existing "
                "workdir is resumed from its latest checkpoint.")],
      required=["config", "workdir"], config_example="configs/pretrain.py:tiny")
