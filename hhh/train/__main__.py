"""`python -m hhh.train`."""

from hhh.train import main

if __name__ == "__main__":
  main()
