"""Bootstrap intervals (hhh.eval.intervals) and the paper-vs-run verdicts built on them (hhh.lab.findings)."""
import numpy as np
import pytest

from hhh.lab import findings
from hhh.eval import intervals


def test_bootstrap_hand_computed_cases():
  # No variation, no uncertainty.
  assert intervals.bootstrap([1, 1, 1, 1]) == [1.0, 1.0]
  assert intervals.bootstrap([0, 0, 0]) == [0.0, 0.0]
  # Two examples, one right: a resample's mean is 0, 1/2 or 1 with probabilities 1/4, 1/2, 1/4, so the 2.5% and
  # 97.5% quantiles of 2,000 resamples are 0 and 1.
  assert intervals.bootstrap([1, 0]) == [0.0, 1.0]
  # Ratio of sums (ranked comparisons: several pairs per example): example 1 has 3 of 4 pairs right, example 2 has
  # 0 of 2. Possible resamples: both ex. 1 (6/8), both ex. 2 (0/4), one each (3/6).
  lo, hi = intervals.bootstrap([3, 0], [4, 2])
  assert (lo, hi) == (0.0, 0.75)
  assert all(np.isnan(intervals.bootstrap([])))  # no examples: no interval


def test_bootstrap_matches_the_normal_approximation_and_is_reproducible():
  rng = np.random.default_rng(1)
  x = (rng.random(400) < 0.6).astype(float)
  lo, hi = intervals.bootstrap(x)
  p = x.mean()
  half = 1.96 * np.sqrt(p * (1 - p) / len(x))
  assert lo == pytest.approx(p - half, abs=0.008) and hi == pytest.approx(p + half, abs=0.008)
  assert intervals.bootstrap(x) == [lo, hi]  # fixed seed: the same numbers give the same interval
  assert intervals.bootstrap(x, seed=1) != [lo, hi]


def test_paired_difference_is_tighter_than_separate_intervals():
  rng = np.random.default_rng(0)
  a = (rng.random(300) < 0.6).astype(float)
  b = a.copy()
  flip = rng.choice(300, 15, replace=False)  # b differs from a on 15 examples, all of them a's wins
  b[flip[a[flip] == 1]] = 0
  d = intervals.bootstrap_diff(a, b)
  assert d["value"] == pytest.approx(a.mean() - b.mean())
  assert d["ci"][0] > 0  # the paired test sees the consistent gain ...
  la, ha = intervals.bootstrap(a)
  lb, hb = intervals.bootstrap(b)
  assert la < hb  # ... which the two separate intervals, overlapping, would hide
  same = intervals.bootstrap_diff(a, a)
  assert same["value"] == 0.0 and same["ci"] == [0.0, 0.0]
  # A difference of differences with weights: (a - b) - (a - b) is exactly 0 in every resample.
  z = intervals.bootstrap_combination([(1, a, None), (-1, b, None), (-1, a, None), (1, b, None)])
  assert z["ci"] == [0.0, 0.0]


def test_bad_input_is_named():
  with pytest.raises(ValueError, match="same examples"):
    intervals.bootstrap_diff([1, 0], [1, 0, 1])
  with pytest.raises(ValueError, match="NaN"):
    intervals.bootstrap([1, float("nan")])
  with pytest.raises(ValueError, match="differ in length"):
    intervals.bootstrap([1, 0], [1])
  with pytest.raises(ValueError, match="expect"):
    intervals.verdict([0.1, 0.2], expect="less")


def test_verdicts():
  assert intervals.verdict([0.01, 0.1]) == "supports"
  assert intervals.verdict([-0.1, -0.01]) == "contradicts"
  assert intervals.verdict([-0.01, 0.1]) == "cannot tell"
  assert intervals.verdict([-0.03, 0.04], expect="similar") == "supports"
  assert intervals.verdict([0.06, 0.2], expect="similar") == "contradicts"
  assert intervals.verdict([0.01, 0.2], expect="similar") == "cannot tell"
  assert intervals.verdict([float("nan")] * 2) == "cannot tell"
  assert intervals.fmt(0.623, [0.55, 0.694]) == "62.3 [55.0, 69.4]" and intervals.fmt(None) == "-"
  assert intervals.fmt(0.05, [-0.02, 0.12], signed=True) == "+5.0 [-2.0, +12.0]"


def _res(pm_right: float, il_right: float, sizes=("s", "m")):
  """Lab results with per-example outcomes: 100 comparisons of 1 pair each; the PM gets pm_right of them right."""
  def outcomes(p):
    return {"correct": [1.0] * int(100 * p) + [0.0] * (100 - int(100 * p)), "pairs": [1.0] * 100}
  objs = {s: {"ranked PM": outcomes(pm_right + 0.1 * i), "imitation (mean log-prob)": outcomes(il_right),
              "binary": outcomes(il_right)} for i, s in enumerate(sizes)}
  return {"sizes": {s: 10 ** (i + 3) for i, s in enumerate(sizes)}, "examples": {"objectives": objs, "pmp": {}},
          "preset": {"pmp_size": sizes[-1]}}


def test_findings_verdicts_follow_the_data():
  rows = {r["claim"]: r for r in findings.findings(_res(0.7, 0.5))}
  pm = rows["A ranked PM tells better from worse more accurately than imitation learning"]
  assert pm["verdict"] == "supports" and pm["value"] == pytest.approx(0.3)  # at the largest size: 0.8 - 0.5
  grows = rows["... and the gap grows with size"]
  assert grows["value"] == pytest.approx(0.1) and grows["verdict"] == "supports"
  assert rows["Binary discrimination performs about like imitation learning"]["verdict"] == "supports"  # identical
  assert "BIG-bench" in rows["The HHH prompt helps the largest model on the HHH evaluations"]["note"]
  assert rows["Preference-model pre-training improves finetuning sample efficiency"]["verdict"] == "cannot tell"
  rows = {r["claim"]: r for r in findings.findings(_res(0.2, 0.6, sizes=("s",)))}
  assert rows["A ranked PM tells better from worse more accurately than imitation learning"]["verdict"] == \
      "contradicts"
  assert "two sizes" in rows["... and the gap grows with size"]["note"]
  md = "\n".join(findings.table(list(rows.values())))
  assert "| -40.0 [" in md and "contradicts" in md


def test_tax_finding_is_uninformative_when_almost_no_word_is_right():
  def tax(right):  # 100 last words, `right` of them reproduced, in every condition
    c = {"accuracy": right / 100, "n": 100, "correct": [1.0] * right + [0.0] * (100 - right)}
    return {"s": {"n": 100, "conditions": {"plain": dict(c), "prompt": dict(c)}}}
  base = {"sizes": {"s": 1000}, "examples": {"objectives": {}, "pmp": {}}, "preset": {}}
  claim = "Small models pay only a small alignment tax for the prompt"
  row = {r["claim"]: r for r in findings.findings({**base, "tax": tax(4)})}[claim]
  assert row["verdict"] == "cannot tell" and "at most 4 words right" in row["note"] and row["value"] is None
  row = {r["claim"]: r for r in findings.findings({**base, "tax": tax(5)})}[claim]
  assert row["value"] == 0.0 and row["verdict"] == "supports"  # 5 right: measured, and equal with and without


def test_bootstrap_over_seeds_reduces_to_examples_with_one_seed_and_widens_with_seed_spread():
  rng = np.random.default_rng(3)
  a, b = rng.integers(0, 2, 80).astype(float), rng.integers(0, 2, 80).astype(float)
  one = intervals.bootstrap_seeds([(1.0, [(a, None)]), (-1.0, [(b, None)])])
  ref = intervals.bootstrap_combination([(1.0, a, None), (-1.0, b, None)])
  assert (one["value"], one["ci"], one["p_le_0"], one["seeds"]) == (ref["value"], ref["ci"], ref["p_le_0"], 1)
  # Seed 1's PM gets 80 of 100 right, seed 2's 40; imitation gets 50 in both. One seed alone supports PM > IL;
  # over both seeds the mean difference is +10 points, but a resample drawing seed 2 twice (1 in 4) gives -10.
  def right(k):
    return np.array([1.0] * k + [0.0] * (100 - k))
  first = intervals.bootstrap_combination([(1.0, right(80), None), (-1.0, right(50), None)])
  assert intervals.verdict(first["ci"]) == "supports"
  both = intervals.bootstrap_seeds([(1.0, [(right(80), None), (right(40), None)]),
                                    (-1.0, [(right(50), None), (right(50), None)])])
  assert both["value"] == pytest.approx(0.1) and both["seeds"] == 2
  assert both["ci"][0] < 0 < both["ci"][1] and intervals.verdict(both["ci"]) == "cannot tell"
  assert 0.2 < both["p_le_0"] < 0.35  # about the 1 in 4 resamples that draw seed 2 twice
  mixed = intervals.bootstrap_seeds([(1.0, [(right(80), None), (right(70), None), (right(75), None)]),
                                     (-1.0, [(right(50), None)])])  # a term trained once
  assert mixed["value"] == pytest.approx(0.25) and mixed["seeds"] == 3 and mixed["ci"][0] > 0
  with pytest.raises(ValueError, match="same examples"):
    intervals.bootstrap_seeds([(1.0, [(right(80), None)]), (-1.0, [(np.ones(50), None)])])


def test_findings_over_seeds_count_the_seeds_and_each_seeds_verdict():
  runs = [_res(0.7, 0.5), _res(0.3, 0.5)]  # the PM beats imitation in seed 1 (80 vs 50), loses in seed 2 (40 vs 50)
  rows = {r["claim"]: r for r in findings.findings(runs[0], runs=runs)}
  pm = rows["A ranked PM tells better from worse more accurately than imitation learning"]
  assert pm["seeds"] == 2 and pm["seed_verdicts"] == ["supports", "contradicts"]
  assert pm["value"] == pytest.approx(0.1) and pm["verdict"] == "cannot tell"
  assert rows["Binary discrimination performs about like imitation learning"]["seed_verdicts"] == ["supports"] * 2
  md = "\n".join(findings.table(list(rows.values())))
  assert "| 2 | cannot tell; supported in 1 of 2 seeds (supports 1, contradicts 1) |" in md
  assert "| 2 | supports; supported in 2 of 2 seeds |" in md
  single = {r["claim"]: r for r in findings.findings(runs[0])}
  assert single["A ranked PM tells better from worse more accurately than imitation learning"]["seeds"] == 1
  assert single["A ranked PM tells better from worse more accurately than imitation learning"]["seed_verdicts"] == []
