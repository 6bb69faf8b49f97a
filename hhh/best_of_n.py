"""`python -m hhh.best_of_n`: the command of hhh.sampling.best_of_n (where its code and flags live)."""

from hhh.cli.quiet import quiet

quiet()  # start-up quieting, before jax and TensorFlow are imported

from hhh.sampling.best_of_n import main  # noqa: E402

if __name__ == "__main__":
  main()
