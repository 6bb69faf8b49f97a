"""`python -m hhh.sample`: the command of hhh.sampling.sample (where its code and flags live)."""

from hhh.sampling.sample import main

if __name__ == "__main__":
  main()
