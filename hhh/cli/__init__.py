"""Command-line plumbing: `python -m hhh.train|eval|lab|sample|chat|best_of_n` and the absl tools in tools/.

command (`run`: absl.app.run with a --help that works and one-line user errors; `config_command`: a command's whole
main()), help_text (that --help), quiet (start-up quieting, which every entry point calls before its heavy imports;
HHH_QUIET=0 keeps the noise).
"""

from hhh.cli.command import config_command, run
