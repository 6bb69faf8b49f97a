"""Language-model pretraining: next-token cross-entropy on packed text.

  python -m hhh.train --config=configs/pretrain.py:13m --workdir=DIR

Default data: the embedded laboratory corpus (`lab_lm`, Human/Assistant dialogues, no downloads). Pod runs point
`--config.data.task` at a TFDS/local-files pretraining mixture (README, "Data").
"""

from hhh import config as hc


def get_config(arg=None):
  c = hc.base_config(hc.parse_arg(arg))
  c.objective.name = "lm"
  c.data.task = "lab_lm"
  return hc.finalize(c)
