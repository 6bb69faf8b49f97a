"""`python -m hhh.eval`."""

from hhh.cli.quiet import quiet

quiet()  # start-up quieting, before jax and TensorFlow are imported

from hhh.eval.run import main  # noqa: E402

if __name__ == "__main__":
  main()
