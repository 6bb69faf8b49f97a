"""Preference-model pre-training (PMP): ranked or binary PMP, from a pretrained LM, fresh score head.

  python -m hhh.train --config=configs/pmp.py:13m,binary --config.init_from=LM_RUN --workdir=DIR
  python -m hhh.train --config=configs/pmp.py:tiny,ranked,lab --config.init_from=LM_RUN --workdir=DIR

Config string: SIZE,VARIANT[,lab]. VARIANT ranked trains the pairs A > B of the PMP mixture (`pmp_ranked`:
StackExchange + Reddit + Wikipedia); binary trains their GOOD:/BAD: transformation (`pmp_binary`). With `lab` the
data is the embedded laboratory instead (`lab_compare_pair` / `lab_compare_binary`, no downloads).
Learning rate 0.1x the pretraining default of the size (paper); context 1024 on the paper sizes. Then finetune
with configs/finetune.py from this run at 0.01x.
"""

from hhh import config as hc
from hhh import objectives

PMP_LR_FACTOR = 0.1


def get_config(arg=None):
  size, parts = hc.size_and_variants(arg, "configs/pmp.py:SIZE,ranked|binary[,lab]",
                                     ([], ["ranked"], ["binary"], ["ranked", "lab"], ["binary", "lab"]))
  variant, rest = (parts[0] if parts else "binary"), parts[1:]
  c = hc.base_config(size)
  c.objective = objectives.default_config("preference")
  c.model.score_head = True
  c.optim.lr = c.optim.lr * PMP_LR_FACTOR
  c.data.num_responses = 2
  if rest == ["lab"]:
    c.data.task = "lab_compare_pair" if variant == "ranked" else "lab_compare_binary"
  else:
    c.data.task = f"pmp_{variant}"
  if size in hc.PAPER_SIZES:
    c.data.seq_len = 1024
  return hc.finalize(c)
