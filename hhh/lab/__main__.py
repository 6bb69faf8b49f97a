"""`python -m hhh.lab`."""

from hhh.cli.quiet import quiet

quiet()  # start-up quieting, before jax and TensorFlow are imported

from hhh.lab import main  # noqa: E402

if __name__ == "__main__":
  main()
