"""`python -m hhh.chat`: the command of hhh.sampling.chat (where its code and flags live)."""

from hhh.cli.quiet import quiet

quiet()  # start-up quieting, before jax and TensorFlow are imported

from hhh.sampling.chat import main  # noqa: E402

if __name__ == "__main__":
  main()
