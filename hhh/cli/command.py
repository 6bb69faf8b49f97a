"""The commands' plumbing, shared by `python -m hhh.train|eval|lab|sample|chat|best_of_n` and the absl tools in
tools/: `run(main)` is `absl.app.run` with a `--help` that works (hhh.cli.help_text), a --config that cannot load or a
misspelt --config.* override as one error line and status 2, and errors that explain themselves
(hhh.core.errors.UserError) as one line and status 1; `config_command` is the whole main() of a command that takes
--config: quiet start-up (hhh.cli.quiet), its flags, and `run`.

The flags `config_command` defines belong to the command that calls it (this module disclaims them, as
ml_collections' config_flags does), so --help lists them under the command.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, Callable, Sequence

from absl import app
from absl import flags
from ml_collections.config_flags import config_flags

from hhh.cli.help_text import (HELP_ARGS, HELPFULL_ARGS, command_name, config_flags_of, help_args, is_file_flag,
                               load_config_file, message, print_help)
from hhh.cli.quiet import quiet
from hhh.core.errors import UserError
from hhh.core.paths import CONFIGS_DIR

flags.disclaim_key_flags()  # flags defined here are the calling command's


def _caller_module(depth: int = 2) -> str:
  """The module whose code called our caller: the one that defined the command's flags."""
  return sys._getframe(depth).f_globals.get("__name__", "__main__")  # pylint: disable=protected-access


def run(main: Callable[[list[str]], Any], argv: Sequence[str] | None = None, *,
        config_example: str | None = None, module: str | None = None) -> None:
  """absl.app.run(main, argv) with a --help/-h/--helpfull that shows the calling module's flags and exits 0.

  `config_example` (e.g. "configs/pretrain.py:tiny") is loaded to list a config flag's top-level fields in --help.
  `module`: the module that defined the command's flags (default: the caller's).
  """
  argv = list(sys.argv if argv is None else argv)
  module = module or _caller_module()
  args = help_args(argv)
  if any(a in HELP_ARGS + HELPFULL_ARGS for a in args):
    status = print_help(module, argv, full=any(a in HELPFULL_ARGS for a in args), config_example=config_example)
    sys.exit(status)
  _check_config_files(module, argv)
  started = []
  inner = _user_errors_without_traceback(main, command_name(module))

  def main_started(args):
    started.append(True)
    return inner(args)

  try:
    app.run(main_started, argv=argv)
  except (AttributeError, KeyError, TypeError, ValueError) as e:
    if started:  # raised by the command itself: not ours to reword
      raise
    # raised while absl parsed the flags: ml_collections' error for a misspelt --config.* override
    print(f"{command_name(module)}: error: bad --config override: {message(e)}", file=sys.stderr, flush=True)
    sys.exit(2)


def _check_config_files(module: str, argv: Sequence[str]) -> None:
  """A --config=FILE:ARG that cannot load (no such file, an unknown size) is one error line and status 2: absl would
  print the loader's traceback inside its own, or ml_collections defer the failure to the config's first use."""
  flag_module = sys.argv[0] if module == "__main__" and sys.argv else module
  args = help_args(argv)
  for f in config_flags_of(flags.FLAGS.get_key_flags_for_module(flag_module)):
    if not is_file_flag(f):
      continue
    specs = [a.split("=", 1)[1] for a in args if a.startswith(f"--{f.name}=")]
    specs += [args[i + 1] for i, a in enumerate(args[:-1]) if a == f"--{f.name}"]
    for spec in specs:
      try:
        path = spec.partition(":")[0]
        if not os.path.isfile(path):  # absl loads the path as given, from the current directory
          raise FileNotFoundError(f"config file {path!r} not found from the current directory {os.getcwd()} (the "
                                  f"project's configs are in {CONFIGS_DIR})")
        load_config_file(spec)
      except Exception as e:  # pylint: disable=broad-except  (any failure to load is the user's to fix)
        print(f"{command_name(module)}: error: --{f.name}={spec}: {message(e)}", file=sys.stderr, flush=True)
        sys.exit(2)


def _user_errors_without_traceback(main, command: str):
  """Errors that explain themselves (hhh.core.errors.UserError) end the command with one line and status 1."""
  def wrapped(argv):
    try:
      return main(argv)
    except BrokenPipeError:
      # The reader of stdout went away (`... | head -1`): stop quietly as a Unix tool killed by SIGPIPE does (status
      # 141), with stdout pointed at /dev/null so the interpreter's final flush cannot raise again.
      os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
      sys.exit(128 + 13)
    except UserError as e:
      if os.environ.get("HHH_TRACEBACK", "0").strip().lower() in ("1", "true", "yes", "on"):
        raise
      print(f"{command}: error: {e}\n(HHH_TRACEBACK=1 shows the traceback)", file=sys.stderr, flush=True)
      sys.exit(1)

  return wrapped


def config_command(argv: Sequence[str] | None, run_config: Callable[..., Any], *, config_help: str | None = None,
                   config_flag=None, strings: Sequence[tuple[str, Any, str]] = (),
                   required: Sequence[str] = ("config",), config_example: str | None = None) -> None:
  """A command's main(): quiets start-up, defines --config (a config file with help `config_help`, or the
  `config_flag` the command defined itself) and the string flags `strings` ((name, default, help), ...), marks
  `required`, and runs run_config(config, *those flags' values) through `run` with absl's INFO log quieted (what it
  returns is dropped: absl would take it for the exit status)."""
  quiet()
  module = _caller_module()
  if config_flag is None:
    config_flag = config_flags.DEFINE_config_file("config", None, config_help, lock_config=True)
  for name, default, text in strings:
    flags.DEFINE_string(name, default, text)
  flags.mark_flags_as_required(list(required))

  def body(_):
    logging.getLogger("absl").setLevel(logging.WARNING)
    run_config(config_flag.value, *(flags.FLAGS[name].value for name, _, _ in strings))  # its result is not a status

  run(body, argv=argv, config_example=config_example, module=module)
