"""Context distillation: the student p_theta (no prompt) matches the frozen initial model conditioned on the HHH
prompt C, by forward KL at every position of the text X:

  L(theta) = sum_t w_t KL( p_0(. | C, x_<=t) || p_theta(. | x_<=t) ) / sum_t w_t

(the paper sums over positions; we average over distilled positions so the loss scale does not depend on L).

Modes (config.objective.mode):
  * online: `init_aux` keeps a copy of the initial parameters as the teacher and computes the prompt's keys/values
    ONCE per run (`prompt_cache`); every batch reuses them through the model's `prefix_cache`, so the prompt is never
    recomputed per example. KL over the full vocabulary.
  * offline: tools/teacher_logits.py stored the teacher's top-k log-probs per position plus one bucket for the
    remaining mass ({teacher_dir}/{split}.npz); training reads them (the trainer's data comes from these files, see
    `hhh.data.teacher_files`) and the loss is the (k+1)-way KL between the stored distribution and the student's
    distribution coarsened to the same buckets.

config.objective: mode, prompt_file ("" = hhh/prompts/hhh_prompt.txt), prompt_max_tokens (0 = whole prompt; else
the preamble plus as many whole dialogues as fit), vocab (must be the data's vocab; the distill configs tie it to
data.vocab), teacher_dir (offline), top_k (offline, default 50), student_sees_prompt (False; True gives the
student the prompt too, recomputed from its own parameters - a check: at initialisation the KL is exactly 0).

The KL is computed from final hidden states in chunks of `model.logits_chunk` positions
(hhh.models.transformer.per_position): neither the teacher's nor the student's [B, L, V] f32 logits are ever live
at once, and the per-position KL equals the whole-sequence computation.
"""

from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np

from hhh import prompts
from hhh import scoring
from hhh.data import teacher_files
from hhh.models import transformer

FAMILY = "distill"
# prompt_max_tokens 0: the whole prompt; vocab must be the data's (the distill configs tie it to data.vocab).
DEFAULTS = {"mode": "online", "prompt_file": "", "prompt_max_tokens": 0, "vocab": "byte", "teacher_dir": "",
            "top_k": 50, "student_sees_prompt": False}
METRIC_WEIGHTS = {"loss": "positions", "kl": "positions"}
OFFLINE_KEYS = teacher_files.TEACHER_KEYS


def prompt_tokens(config) -> np.ndarray:
  return prompts.token_ids(config.prompt_file, config.vocab, int(config.prompt_max_tokens))[0]


def init_aux(initial_params, *, model, config):
  if config.mode == "offline":
    return None
  # `+ 0` makes the teacher a separate buffer: the trainer donates (deletes) the trained parameters every step.
  teacher = jax.tree.map(lambda p: p + 0, initial_params)
  return {"teacher": teacher, "prompt": scoring.prompt_cache(model, initial_params, prompt_tokens(config))}


def teacher_logits(model, aux, tokens):
  """The prompted teacher's logits on tokens [B, L], reusing the prompt's keys/values."""
  out = model.apply({"params": aux["teacher"]}, tokens, prefix_cache=aux["prompt"])
  return jax.lax.stop_gradient(out["logits"])


def teacher_hidden(model, aux, tokens):
  """The prompted teacher's final hidden states [B, L, D] (no gradient), reusing the prompt's keys/values."""
  out = model.apply({"params": aux["teacher"]}, tokens, prefix_cache=aux["prompt"], return_logits=False,
                    return_hidden=True)
  return jax.lax.stop_gradient(out["hidden"])


def forward_kl(teacher_logits_, student_logits):
  """KL(teacher || student) per position over the full vocabulary: [..., V] -> [...]."""
  lq = jax.nn.log_softmax(teacher_logits_.astype(jnp.float32), -1)
  lp = jax.nn.log_softmax(student_logits.astype(jnp.float32), -1)
  return (jnp.exp(lq) * (lq - lp)).sum(-1)


def topk_kl(topk_ids, topk_logprobs, remainder_logprob, student_logits):
  """(k+1)-way KL(teacher || student) per position: the teacher's top-k tokens plus one bucket for the rest.

  The student's bucket probabilities are its probabilities of the same k tokens and of everything else
  (logsumexp of the other logits, stable). Buckets where the teacher has zero mass contribute 0.
  """
  logits = student_logits.astype(jnp.float32)
  lse = jax.nn.logsumexp(logits, -1)
  lp_top = jnp.take_along_axis(logits, topk_ids, -1) - lse[..., None]
  rest = jnp.put_along_axis(logits, topk_ids, -1e30, axis=-1, inplace=False)
  lp_rest = jax.nn.logsumexp(rest, -1) - lse
  lq = jnp.concatenate([topk_logprobs.astype(jnp.float32), remainder_logprob.astype(jnp.float32)[..., None]], -1)
  lp = jnp.concatenate([lp_top, lp_rest[..., None]], -1)
  q = jnp.exp(lq)
  pos = q > 0
  return jnp.where(pos, q * (jnp.where(pos, lq, 0.0) - lp), 0.0).sum(-1)


def topk_with_remainder(logits, k: int):
  """What the offline teacher stores: (top-k ids, their log-probs, log of the remaining mass) per position."""
  lq = jax.nn.log_softmax(logits.astype(jnp.float32), -1)
  lps, ids = jax.lax.top_k(lq, k)
  rest = jnp.put_along_axis(lq, ids, -jnp.inf, axis=-1, inplace=False)
  return ids.astype(jnp.int32), lps, jax.nn.logsumexp(rest, -1)


def loss_fn(params, batch, *, model, config, rng=None, aux=None):
  del rng
  tokens = batch["tokens"]
  w = batch["loss_weights"].astype(jnp.float32)
  student_prefix = None
  if config.student_sees_prompt:
    student_prefix = scoring.prompt_cache(model, params, prompt_tokens(config))
  student = model.apply({"params": params}, tokens, prefix_cache=student_prefix, return_logits=False,
                        return_hidden=True)["hidden"]
  cfg = model.cfg
  if config.mode == "offline":
    missing = [k for k in OFFLINE_KEYS if k not in batch]
    if missing:
      raise ValueError(f"offline distillation needs the stored teacher features {missing}: set "
                       f"objective.teacher_dir to the output of tools/teacher_logits.py")
    kl = transformer.per_position(
        lambda h, ids, lps, rem: topk_kl(ids, lps, rem, transformer.unembed(params, h, cfg)),
        (student, batch["topk_ids"], batch["topk_logprobs"], batch["remainder_logprob"]), cfg.logits_chunk)
  else:
    kl = transformer.per_position(
        lambda ht, hs: forward_kl(transformer.unembed(aux["teacher"], ht, cfg), transformer.unembed(params, hs, cfg)),
        (teacher_hidden(model, aux, tokens), student), cfg.logits_chunk)
  n = jnp.maximum(w.sum(), 1.0)
  loss = (kl * w).sum() / n
  return loss, {"kl": loss, "positions": w.sum()}


# ----------------------------------------------------------------------------------------------- offline files


def batches(config, *, split: str, start_batch: int, train: bool):
  """The trainer's data hook: stored teacher files in offline mode, else None (the seqio pipeline)."""
  if not config.objective.teacher_dir:
    return None
  return teacher_files.read_batches(config, split=split, start_batch=start_batch, train=train)
