"""hhh: the HHH training stack (python -m hhh.train | hhh.eval | hhh.lab; tools/).

Importing the package quiets TensorFlow's and JAX's start-up noise (hhh.cli.quiet; HHH_QUIET=0 keeps it).
"""

from hhh import cli as _cli

_cli.quiet()
