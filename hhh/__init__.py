"""hhh: the HHH training stack (python -m hhh.train | hhh.eval | hhh.lab; tools/).

Importing the package does nothing else; the commands' entry points quiet TensorFlow's and JAX's start-up noise
before their heavy imports (hhh.cli.quiet; HHH_QUIET=0 keeps it).
"""
