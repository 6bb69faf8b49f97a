"""The `python -m hhh.lab` command: the preset named on the command line (--config.preset) is read first, every other
--config.* setting (configs/lab.py) applies on top of it, and the laboratory runs in --workdir (rerun = resume). A
bad preset or setting is a one-line usage error, not a traceback.
"""
from __future__ import annotations

import sys

from ml_collections import config_flags

from hhh import cli
from hhh.lab.run import run_lab
from hhh.lab.settings import default_config, preset_from_argv


def main(argv=None):
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

