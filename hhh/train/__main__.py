"""`python -m hhh.train`."""

from hhh.cli.quiet import quiet

quiet()  # start-up quieting (python -m imported hhh.train, and so jax, already; no backend has started yet)

from hhh.train.main import main  # noqa: E402

if __name__ == "__main__":
  main()
