"""`python -m hhh.chat`: the command of hhh.sampling.chat (where its code and flags live)."""

from hhh.sampling.chat import main

if __name__ == "__main__":
  main()
