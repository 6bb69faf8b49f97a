"""Binary discrimination: each sample is classified good/bad on its own by a logistic loss on the score head at
the end-of-context token.

  python -m hhh.train --config=configs/binary.py:tiny --workdir=DIR [--config.init_from=LM_RUN]
"""

from hhh import config as hc


def get_config(arg=None):
  c = hc.base_config(hc.parse_arg(arg))
  c.objective.name = "binary"
  c.model.score_head = True
  c.data.task = "lab_binary"
  return hc.finalize(c)
