"""The trainer's finite guard: every step's on-device non-finite flag (loss or gradient, hhh.train.step) is held
until the next check - a log step or a save - so the host never waits on a step just to check it, and no checkpoint
is ever written after a non-finite loss, gradient or parameter; the error names the step and the last good
checkpoint to resume from."""

from __future__ import annotations

import jax

from hhh.core.errors import UserError
from hhh.run import checkpoint as ckpt_lib


class NonFiniteError(UserError, FloatingPointError):
  pass


class FiniteGuard:
  """Holds each step's on-device non-finite flag until the next check (a log step or a save), so the host never
  waits on a step just to check it, and no checkpoint is written after a non-finite loss or gradient."""

  def __init__(self, checkpointer: ckpt_lib.Checkpointer):
    self.checkpointer = checkpointer
    self.pending: list[tuple[int, jax.Array]] = []

  def add(self, step: int, flag) -> None:
    self.pending.append((step, flag))

  def check(self, state=None) -> None:
    flags = jax.device_get([f for _, f in self.pending])
    bad = [s for (s, _), f in zip(self.pending, flags) if bool(f)]
    self.pending = []
    what = "loss or gradient"
    if not bad and state is not None and not bool(ckpt_lib.all_finite(state.params)):
      bad, what = [-1], "parameters"
    if bad:
      where = f"at step {bad[0]}" if bad[0] >= 0 else "after the last step"
      last = self.checkpointer.latest_step()
      resume = (f"the last good checkpoint is {self.checkpointer.directory}/{last} (no checkpoint was written after "
                f"the failure): lower optim.lr or fix the data and rerun the same command to resume from it"
                if last is not None else "no checkpoint had been written yet: the rerun starts from step 0")
      raise NonFiniteError(f"non-finite {what} {where}; stopped without saving. {resume}.")
