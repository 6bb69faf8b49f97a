"""Evaluation: HHH comparisons, TruthfulQA MC, ranked comparisons, alignment tax, calibration.

  python -m hhh.eval --config=configs/eval.py:SIZE --workdir=DIR --config.checkpoint=PATH \
      [--config.distilled_checkpoint=PATH] [--config.pm_checkpoint=PATH] [--config.eval.convention=bigbench]

The model config is the size's (as in training); `pm_checkpoint` is loaded with model.score_head=True.
"""
import ml_collections

from hhh import config as hc


def get_config(arg=None):
  c = hc.base_config(hc.parse_arg(arg))
  small = c.size in hc.CPU_SIZES
  if small:  # rotary positions: max_len only bounds the context, so the CPU sizes take a longer prompt (as distill)
    c.model.max_len = max(int(c.model.max_len), 2048)
  c.checkpoint = ""  # the LM: conditions plain and prompt
  c.distilled_checkpoint = ""  # the context-distilled LM: condition distilled
  c.pm_checkpoint = ""  # a preference or binary model (score head): condition pm
  c.eval = ml_collections.ConfigDict(dict(
      suites="hhh,truthfulqa",  # any of hhh, truthfulqa, compare, tax
      conditions="plain,prompt,distilled,pm",  # conditions without a checkpoint are skipped (and said so)
      convention="paper",  # paper: "\n\nHuman: q\n\nAssistant:" | bigbench: "\nHuman: q\nAssistant:" (lm-eval-harness)
      prompt="",  # a text file; "" = the project's HHH prompt (hhh.prompts)
      prompt_max_tokens=0,  # 0 = model.max_len - seq_len; the preamble and whole dialogues that fit are kept
      null_context="",  # context of log P(a) in the mutual information; "" = the assistant marker of the convention
      # Tokens per sample (context + response + end-of-context token; contexts are cut at their beginning). The
      # prompt gets the rest of model.max_len (its preamble and as many whole dialogues as fit).
      seq_len=min(512, c.model.max_len // 2) if small else 2048,
      batch_size=32,  # examples per forward pass (x their responses/choices)
      calibration_bins=10,
      compare_tasks="lab_compare",
      compare_conditions="",  # "" = every condition; e.g. "plain,pm"
      compare_split="test",
      compare_mi=True,  # LMs also by mutual information (a second, null-context pass over every response)
      compare_k=4,
      tax_tasks="tax_lambada,tax_hellaswag,tax_arc_easy,tax_arc_challenge,tax_openbookqa,tax_piqa",
      tax_split="validation",
      tax_k=5,
      max_examples=0,  # 0 = all (compare and tax tasks)
      step=-1,  # TensorBoard step; -1 = the checkpoint's step
  ))
  return hc.finalize(c)
