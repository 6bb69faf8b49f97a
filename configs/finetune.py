"""Preference-model finetuning, usually from a PMP run (`init_from`; score head included), at 0.01x the
pretraining learning rate.

  python -m hhh.train --config=configs/finetune.py:13m --config.init_from=PMP_RUN --workdir=DIR
  python -m hhh.train --config=configs/finetune.py:tiny,lab --config.init_from=PMP_RUN --workdir=DIR

Data: `finetune_compare` (HH-RLHF, summarize-from-feedback, ELI5, ETHICS); with `lab`, the embedded `lab_compare_hhh`
(K=4 ranked). Without init_from this is PM training from scratch at a low rate (the "no PMP" baseline of
tools/transfer_sweep.py overrides the rate).
"""

from hhh import config as hc
from hhh import objectives

FINETUNE_LR_FACTOR = 0.01


def get_config(arg=None):
  size, rest = hc.size_and_variants(arg, "configs/finetune.py:SIZE[,lab]", ([], ["lab"]))
  c = hc.base_config(size)
  c.objective = objectives.default_config("preference")
  c.model.score_head = True
  c.optim.lr = c.optim.lr * FINETUNE_LR_FACTOR
  if rest == ["lab"]:
    c.data.task, c.data.num_responses = "lab_compare_hhh", 4
  else:
    c.data.task, c.data.num_responses = "finetune_compare", 2
  if size in hc.PAPER_SIZES:
    c.data.seq_len = 1024
  return hc.finalize(c)
