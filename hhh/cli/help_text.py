"""The commands' --help (hhh.cli.command.run): the command's docstring, ITS flags with their help, how --config and
its overrides work (with --config=... also given: that config's every field); --helpfull adds every flag of every
module (absl, jax, orbax, ...). absl's own --help (absl.app.HelpFlag) always exits 1, and it shows only the flags that
the file named by sys.argv[0] defined: `python -m hhh.eval` runs hhh/eval/__main__.py while the flags are defined in
hhh.eval.run, so it showed none (just "USAGE ... Try --helpfull"). The help here looks the flags up by the module
that defined them instead.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import sys
from typing import Any, Sequence

from absl import flags
from ml_collections.config_flags import config_flags

from hhh.core.paths import CONFIGS_DIR

HELP_ARGS = ("--help", "-help", "-h", "-?", "--helpshort", "-helpshort")
HELPFULL_ARGS = ("--helpfull", "-helpfull")


# The module whose main() defines a command's flags -> the name users type after `python -m`.
COMMAND_NAMES = {"hhh.train.main": "hhh.train", "hhh.eval.run": "hhh.eval", "hhh.lab.main": "hhh.lab",
                 "hhh.sampling.sample": "hhh.sample", "hhh.sampling.chat": "hhh.chat",
                 "hhh.sampling.best_of_n": "hhh.best_of_n"}


def command_name(module: str) -> str:
  """How the user started the command defined in `module` (`python -m hhh.train`, `python tools/x.py`)."""
  if module in COMMAND_NAMES:
    return "python -m " + COMMAND_NAMES[module]
  if module == "__main__":
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    if spec is not None and spec.name:
      return "python -m " + spec.name.removesuffix(".__main__")
    return "python " + (sys.argv[0] if sys.argv else "?")
  return "python " + (sys.argv[0] if sys.argv else module)


def help_args(argv: Sequence[str]) -> list[str]:
  """argv[1:] up to a `--` (what follows it is not for absl)."""
  args = list(argv[1:])
  return args[:args.index("--")] if "--" in args else args


def config_flags_of(flag_list) -> list[Any]:
  cls = getattr(config_flags, "_ConfigFlag", None)
  return [f for f in flag_list if cls is not None and isinstance(f, cls)]


def is_file_flag(flag) -> bool:
  return isinstance(flag.parser, config_flags.ConfigFileFlagParser)


def load_config_file(spec: str):
  from hhh import config as hc  # pylint: disable=g-import-not-at-top  (imports jax: after the entry point's quiet())
  return hc.load(spec)


def _config_section(flag, command: str, example: str | None, given: bool) -> list[str]:
  name = flag.name
  if not is_file_flag(flag):
    return [f"--{name}.FIELD=VALUE overrides any field of --{name} (defaults above; a misspelt field is an error).",
            "  the settings that result: add the overrides to --help."]
  lines = [f"--{name}=FILE.py:ARG loads get_config(ARG) from FILE.py, e.g. --{name}=configs/pretrain.py:tiny.",
           f"--{name}.a.b=VALUE overrides any field, e.g. --{name}.train.steps=100 --{name}.optim.lr=1e-3 (a "
           f"misspelt field is an error)."]
  files = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(CONFIGS_DIR, "*.py"))
                 if not p.endswith("__init__.py"))
  if files:
    lines.append(f"  config files (configs/): {', '.join(files)}")
  try:
    from hhh import config as hc  # pylint: disable=g-import-not-at-top  (imports jax: after quiet())
    lines.append(f"  sizes (ARG): {', '.join(hc.CPU_SIZES)} (CPU); {', '.join(hc.PAPER_SIZES)} (the paper's); or a "
                 f"run directory (its config.json's architecture, e.g. from tools/hf_import.py)")
  except Exception:  # pylint: disable=broad-except  (help must not fail on a broken install)
    pass
  if not given:
    default = flag.default if isinstance(flag.default, str) else str(getattr(flag, "default_as_str", "")).strip("'")
    example = example or (default if default not in ("", "None") else None)
    if example:
      try:
        c = load_config_file(example)
        fields = [f"{k}.*" if hasattr(v, "keys") else k for k, v in c.items()]
        lines.append(f"  top-level fields ({example}): {' '.join(fields)}")
      except Exception:  # pylint: disable=broad-except
        pass
    lines.append(f"  every field and value of a config: {command} --{name}={example or 'FILE.py:ARG'} --help")
  return lines


def print_help(module: str, argv: Sequence[str], *, full: bool = False, config_example: str | None = None,
               out=None) -> int:
  """Writes the help of the command whose flags `module` defined; returns the exit status (0)."""
  fv = flags.FLAGS
  out = out or sys.stdout
  flag_module = sys.argv[0] if module == "__main__" and sys.argv else module
  command = command_name(module)
  args = [a for a in help_args(argv) if a not in HELP_ARGS + HELPFULL_ARGS]
  own = fv.get_key_flags_for_module(flag_module)
  cflags = config_flags_of(own)
  given = {f.name: any(re.match(rf"^--?{re.escape(f.name)}([=.]|$)", a) for a in args) for f in cflags}
  error = None
  if args:  # parse what was given (e.g. --config=... and overrides) to show the resulting config
    try:
      fv([argv[0]] + args, known_only=True)
    except Exception as e:  # pylint: disable=broad-except  (reported below; help is still printed)
      if "must have a value other than None" not in str(e):  # a missing required flag is expected here
        error = e
  doc = (sys.modules.get(module).__doc__ if module in sys.modules else None) or f"USAGE: {command} [flags]"
  parts = [doc.strip("\n"), ""]
  if full:
    parts += ["flags (every module; --help shows only this command's):", fv.get_help()]
  else:
    body = fv.module_help(flag_module).strip("\n").split("\n", 1)  # drop the "module.name:" header line
    parts += ["flags:", body[1] if len(body) > 1 else "  (none)"]
  for f in cflags:
    parts += [""] + _config_section(f, command, config_example, given[f.name])
    if given[f.name] or any(a.startswith(f"--{f.name}.") for a in args):
      try:
        value = f.value
        if type(value).__name__ == "_ErrorConfig":  # ml_collections defers a failed load to first use
          value, error = None, getattr(value, "_error", error)
      except Exception as e:  # pylint: disable=broad-except
        value, error = None, e
      if value is not None:
        parts += ["", f"--{f.name} with the arguments given:", str(value).rstrip()]
      elif error is not None:
        parts += ["", f"--{f.name} could not be loaded: {message(error)}"]
  if error is not None and not any("could not be loaded" in p for p in parts):
    parts += ["", f"error in the arguments given: {message(error)}"]
  if not full:
    parts += ["", "--helpfull lists every flag (absl, jax, orbax, ...)."]
  try:
    out.write("\n".join(parts) + "\n")
    out.flush()
  except BrokenPipeError:  # `... --help | head`: no "Exception ignored" at exit either
    with contextlib.suppress(OSError, ValueError):
      os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
  return 0


def message(error: BaseException) -> str:
  lines = str(error).replace("\\n", "\n").replace("\\'", "'").splitlines()
  return ": ".join(line.strip("' ") for line in lines if line.strip("' "))
