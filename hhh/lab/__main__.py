"""`python -m hhh.lab`."""

from hhh.lab import main

if __name__ == "__main__":
  main()
