"""Evaluations: HHH comparisons, TruthfulQA, alignment tax, calibration (python -m hhh.eval)."""
