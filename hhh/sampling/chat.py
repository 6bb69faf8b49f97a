"""Chat with a trained language model as a Human/Assistant dialogue; replies stream as they are produced.

  python -m hhh.chat --config=configs/sample.py:SIZE --config.checkpoint=RUN [--config.prompt=none]

The HHH prompt (--config.prompt=hhh, the default; none for a context-distilled model; or a prompt file) is the
preamble of the conversation, prefilled once. Each message is posed as "\\n\\nHuman: {message}\\n\\nAssistant:" after
the conversation so far; the reply ends at the stop strings (--config.stop, default "\\n\\nHuman:"), at
end-of-sequence or after max_new_tokens, and is decoded --config.chunk tokens per compiled call. When the
conversation outgrows the model's context, its oldest turns are dropped (and a note says so).

Commands (a line starting with /):
  /settings                  show the sampling settings
  /settings key=value ...    change temperature, top_k, top_p, max_new_tokens, seed or chunk
  /reset                     start a new conversation (the preamble stays)
  /quit                      leave; so does the end of input (Ctrl-D), with exit status 0
"""

from __future__ import annotations

import dataclasses
import sys
from typing import TextIO

from hhh import cli
from hhh.core.errors import ConfigError
from hhh.data import dialogue
from hhh import sampling

COMMANDS = "/settings [key=value ...], /reset, /quit"
CHANGEABLE = {"temperature": float, "top_k": int, "top_p": float, "max_new_tokens": int, "seed": int}


class Chat:
  """A conversation with a Sampler: the turns so far, the settings, and one reply per message."""

  def __init__(self, sampler: sampling.Sampler, settings: sampling.Settings, *, chunk: int = 8,
               out: TextIO = sys.stdout):
    self.sampler, self.settings, self.chunk, self.out = sampler, settings, max(1, int(chunk)), out
    self.turns: list = []  # [(human message, assistant reply as generated, with its leading space)]
    self.replies = 0  # replies since the last /reset: key of the next reply's random stream

  def _write(self, text: str) -> None:
    self.out.write(text)
    self.out.flush()

  def context(self, message: str, turns=None) -> str:
    turns = self.turns if turns is None else turns
    return "".join(dialogue.query(h) + a for h, a in turns) + dialogue.query(message)

  def reply(self, message: str):
    """Streams the assistant's reply to `message` to `out`; returns the Sample (None if the message cannot fit)."""
    room = self.sampler.room(self.settings)
    turns = list(self.turns)
    ids = self.sampler.vocab.encode(self.context(message, turns))
    while len(ids) > room and turns:
      turns.pop(0)
      ids = self.sampler.vocab.encode(self.context(message, turns))
    if len(ids) > room:
      self._write(f"(message too long: {len(ids)} tokens with its turn markers; the context leaves {room}, "
                  f"model.max_len={self.sampler.max_len} = shared prompt {self.sampler.prefix_len} + max_new_tokens "
                  f"{self.settings.max_new_tokens} + {room})\n")
      return None
    if len(turns) < len(self.turns):
      self._write(f"(dropped the {len(self.turns) - len(turns)} oldest turn(s) to fit the context)\n")
      self.turns = turns
    self._write("Assistant:")
    sample = self.sampler.stream(ids, self.settings, chunk=self.chunk, on_text=self._write,
                                 prompt_index=self.replies)
    self._write("\n")
    self.turns.append((message, sample.text))
    self.replies += 1
    return sample

  def command(self, line: str) -> bool:
    """Runs a /command; False for /quit."""
    name, *args = line.split()
    if name == "/quit":
      return False
    if name == "/reset":
      self.turns, self.replies = [], 0
      self._write("(new conversation)\n")
    elif name == "/settings":
      if args:
        self._change(args)
      self._write(self.describe() + "\n")
    else:
      self._write(f"(unknown command {name}; commands: {COMMANDS})\n")
    return True

  def _change(self, args) -> None:
    changes, chunk = {}, self.chunk
    for a in args:
      key, sep, value = a.partition("=")
      if not sep or key not in list(CHANGEABLE) + ["chunk"]:
        self._write(f"(ignored {a!r}: use key=value with key one of {', '.join(list(CHANGEABLE) + ['chunk'])})\n")
        return
      try:
        if key == "chunk":
          chunk = int(value)
          if chunk < 1:
            raise ValueError("chunk must be >= 1")
        else:
          changes[key] = CHANGEABLE[key](value)
      except ValueError as e:
        self._write(f"(ignored {a!r}: {e})\n")
        return
    try:
      settings = dataclasses.replace(self.settings, **changes)
    except ConfigError as e:
      self._write(f"(settings unchanged: {e})\n")
      return
    self.settings, self.chunk = settings, chunk

  def describe(self) -> str:
    s = self.settings
    return (f"(settings: temperature={s.temperature} top_k={s.top_k} top_p={s.top_p} max_new_tokens="
            f"{s.max_new_tokens} seed={s.seed} chunk={self.chunk} stop={list(s.stop)!r}; shared prompt "
            f"{self.sampler.prefix_len} tokens; {len(self.turns)} turn(s) so far)")


def run_chat(config, stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout, *, devices=None) -> int:
  sampler, settings, info = sampling.from_config(config, devices=devices)
  chat = Chat(sampler, settings, chunk=int(config.chunk), out=stdout)
  stdout.write(f"hhh.chat: {info['checkpoint']} ({config.size}), shared prompt {info['prompt']} "
               f"({sampler.prefix_len} tokens). Commands: {COMMANDS}. End of input leaves.\n")
  interactive = stdin.isatty()
  if hasattr(stdin, "reconfigure"):  # bytes that are not UTF-8 become lone surrogates, refused line by line below
    stdin.reconfigure(errors="surrogateescape")
  while True:
    if interactive:
      stdout.write("Human: ")
    stdout.flush()
    line = stdin.readline()
    if not line:  # end of input
      stdout.write("\n" if interactive else "")
      stdout.flush()
      return 0
    line = line.rstrip("\n")
    if not line.strip():
      continue
    if any("\udc80" <= c <= "\udcff" for c in line):
      stdout.write("(ignored a line that is not valid UTF-8)\n")
      continue
    if not interactive:  # echo the message, so a piped session reads as a dialogue
      stdout.write(f"Human: {line}\n")
    if line.startswith("/"):
      if not chat.command(line):
        return 0
      continue
    chat.reply(line)


def main(argv=None):

  cli.config_command(
      argv, lambda config: sys.exit(run_chat(config)), config_help="configs/sample.py:SIZE; set "
      "--config.checkpoint=RUN (and --config.prompt=none for a context-distilled model).",
      config_example="configs/sample.py:tiny")


if __name__ == "__main__":
  main()
