"""The laboratory's settings (hhh.lab): `python -m hhh.lab --workdir=DIR [--config.preset=smoke]` uses the same
defaults without this file; `--config=configs/lab.py:smoke` selects a preset here. Fields left at 0 / "" / -1 take
the preset's value (hhh.lab.PRESETS)."""
from hhh import lab


def get_config(arg=None):
  c = lab.default_config()
  if arg:
    c.preset = arg
  c.lock()
  return c
