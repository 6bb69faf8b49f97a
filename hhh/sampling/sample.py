"""Sample from a trained language model: prompts in, one JSON line per sample out.

  python -m hhh.sample --config=configs/sample.py:SIZE --config.checkpoint=RUN --config.prompts=FILE_OR_TEXT \\
      [--config.prompt=hhh|none|PATH] [--config.temperature=0.7] [--config.top_p=0.9] [--config.num_samples=4] \\
      [--out=samples.jsonl]

--config.prompts is a .jsonl file (a JSON string or {"prompt": ...} per line), a text file (one prompt per line)
or the prompt text itself. With --config.format=dialogue (default) each prompt is the human's turn, posed as
"\\n\\nHuman: {prompt}\\n\\nAssistant:" after the shared prompt (--config.prompt: the project's HHH prompt, none for a
context-distilled model, or a prompt file), prefilled once for every row; --config.format=raw continues the text
as given. Sampling runs on the training mesh (config.mesh) with a key/value cache (hhh.sampling, docs/sampling.md).

Each output line holds prompt_index, sample_index, prompt, context, sample (the text, cut before the first stop
string), tokens, logprobs (log P(token) under the unmodified model distribution, whatever temperature/top-k/top-p),
sum_logprob, num_tokens, stop_reason (eos | stop | length) and settings (checkpoint, shared prompt, sampling
settings, seed). The same seed gives the same samples. Without --out (or with --out=-) the lines go to stdout and the
progress lines to stderr.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Callable

import jax

from hhh import cli
from hhh.core.errors import ConfigError
from hhh.core import paths
from hhh import sampling


def sample_to_file(config, out: str | None, *, devices=None, log: Callable[[str], None] = print) -> list:
  """Samples every prompt of config.prompts and writes the JSONL records to `out` (None, "" or "-": stdout, with the
  progress lines on stderr); returns the records."""
  to_stdout = out in (None, "", "-")
  if to_stdout:
    log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731  (stdout carries only the JSONL)
  else:
    out = paths.resolve(out)
    if os.path.isdir(out):
      raise ConfigError(f"--out={out} is a directory: give the JSONL file to write (or - for stdout)")
  texts = sampling.read_prompts(config.prompts)
  contexts = [sampling.format_context(t, config.format) for t in texts]
  sampler, settings, info = sampling.from_config(config, devices=devices)
  ids = [list(sampler.vocab.encode(c)) for c in contexts]
  t0 = time.perf_counter()
  samples = sampler.generate(ids, settings)
  wall = time.perf_counter() - t0
  described = {**info, **settings.describe(), "mesh": dict(sampler.mesh.shape)}
  records = [{
      "prompt_index": s.prompt_index, "sample_index": s.sample_index, "prompt": texts[s.prompt_index],
      "context": contexts[s.prompt_index], "sample": s.text, "tokens": s.tokens, "logprobs": s.logprobs,
      "sum_logprob": s.sum_logprob, "num_tokens": len(s.tokens), "stop_reason": s.stop_reason,
      "settings": described} for s in samples]
  if jax.process_index() == 0:
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    if to_stdout:
      sys.stdout.write(lines)
      sys.stdout.flush()
    else:
      os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
      with open(out, "w", encoding="utf-8") as f:
        f.write(lines)
  n_tokens = sum(len(s.tokens) for s in samples)
  for r in records:
    preview = r["sample"] if len(r["sample"]) <= 160 else r["sample"][:157] + "..."
    log(f"[{r['prompt_index']}.{r['sample_index']}] ({r['num_tokens']} tokens, {r['stop_reason']}, "
        f"sum log-prob {r['sum_logprob']:.2f}) {preview!r}")
  log(f"hhh.sample: {len(records)} samples of {len(texts)} prompts ({n_tokens} tokens, {wall:.1f}s with "
      f"compilation) -> {'stdout' if to_stdout else out}")
  return records


def main(argv=None):

  cli.config_command(
      argv, sample_to_file,
      config_help="configs/sample.py:SIZE; set --config.checkpoint=RUN and --config.prompts=FILE_OR_TEXT.",
      strings=[("out", "-", "JSONL file for the samples (one line per sample: prompt, sample, per-token log-probs, "
                "settings); relative to the current directory. - (the default): stdout, with the progress lines on "
                "stderr.")], config_example="configs/sample.py:tiny")


if __name__ == "__main__":
  main()
