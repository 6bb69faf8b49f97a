"""`python -m hhh.best_of_n`: the command of hhh.sampling.best_of_n (where its code and flags live)."""

from hhh.sampling.best_of_n import main

if __name__ == "__main__":
  main()
