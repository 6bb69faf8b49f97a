"""Sampling from a trained LM: prefill + decode with a key/value cache, on the training mesh (docs/sampling.md).

Two compiled programs per shape serve a whole generation:

  * prefill: the prompts of a batch, right-padded to a bucketed length T, go through the training forward
    (`return_cache=True`, after the shared prefix) once; their keys/values become the first T slots of a decode
    cache {"k", "v": one [rows, heads, S, head_dim] array per layer, "index": [rows]} with S = T + max_new_tokens
    slots, whose logical axes (`kv_cache.CACHE_AXES`) shard it like the activations: rows over the data axes,
    heads over `tensor`. Row b's index starts at its own prompt length, so every row decodes at its own position.
    With n samples per prompt each prompt is prefilled once and its cache rows are copied n times.
  * decode: `jax.lax.while_loop` over steps (one program for every step, and for every chunk of steps: the step
    limit is an argument): choose each row's next token from its logits, record it and its log-probability, stop
    the row at end-of-sequence or when its newest tokens spell a stop string, then run the model on the chosen
    tokens with `cache=` (hhh.models.transformer: writes k/v at each row's index, attends to slots <= index and to
    the shared prefix) for the next logits. The loop ends when every row is done or the limit is reached.

Both run the model with its layers unrolled (`kv_cache.unrolled_params`: the scanned parameters are split per
layer once, when the Sampler is built), so that no step copies a layer's weights or cache out of a stacked array.

The shared prefix (the HHH prompt) is prefilled ONCE per sampler with `hhh.scoring.prompt_cache` (the
model's `prefix_cache`, as context distillation and prompted evaluation use it) and every row of every batch
attends to it.

Choosing a token: temperature 0 is greedy (argmax of the logits); otherwise the logits are divided by the
temperature, cut to the top-k (`top_k` > 0) and then to the nucleus (`top_p` < 1: the most probable tokens whose
mass reaches top_p, the token that crosses it included; tokens tied with the last kept one are kept), and a token
is drawn (`filter_logits`).

Log-probs: each returned token's log-probability under the UNMODIFIED model distribution, log softmax(logits) at
temperature 1 without top-k/top-p, whatever the sampling settings (so a sample's sum is its log-likelihood under
the model, comparable across settings).

Determinism: row (prompt i, sample j) draws step t with key fold_in(fold_in(fold_in(key(seed), i), j), t), so the
same seed gives the same samples whatever the batch size, the padding or the mesh (up to float summation order,
which can flip a near-tie), and a different seed gives different samples.

Stop strings are cut exactly from the returned text (the text ends before the first occurrence of any of them);
the returned tokens are those whose text lies before the cut (for the byte vocabulary exactly the text's bytes),
and a sample that ends at end-of-sequence keeps that token (and its log-prob) last.

The package, one concern per module: settings (Settings, Sample), choice (token choice), decode (prefill and the
decode loop, pure), sampler (the Sampler on a mesh), text (stop strings, the returned text), setup (the commands'
prompts, prefix and Sampler); the commands sample, chat and best_of_n.
"""

from __future__ import annotations

from hhh.sampling.choice import choose_tokens, filter_logits, row_keys  # noqa: F401
from hhh.sampling.decode import decode_loop, decode_step, init_state, prefill  # noqa: F401
from hhh.sampling.sampler import Sampler, prefix_sharding, state_shardings, unrolled  # noqa: F401
from hhh.sampling.settings import STOP_REASONS, Sample, Settings  # noqa: F401
from hhh.sampling.setup import format_context, from_config, prefix_ids, read_prompts  # noqa: F401
from hhh.sampling.text import finish_row, first_stop, hold_back  # noqa: F401
