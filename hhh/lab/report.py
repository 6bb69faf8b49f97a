"""The laboratory's report (DIR/report.md): every table with its 95% intervals and a "what this shows" paragraph
(chance, caveats, links to the per-size evaluation pages), the paper-vs-run table (hhh.lab.findings), the spread across
seeds (hhh.lab.seeds) and the stage times. Input: hhh.lab.run_lab's results (the same dict as DIR/lab.json)."""
from __future__ import annotations

from hhh.eval import intervals
from hhh.eval import tax as tax_eval
from hhh.lab import findings
from hhh.lab import seeds as seeds_lib
from hhh import sandbox

def _pct(v):
  return "-" if v is None else f"{100 * float(v):.1f}"


def _num(v):
  return "-" if v is None or v != v else f"{float(v):.3f}"


def _ci(v, ci):
  return intervals.fmt(v, ci)


def _top1(cond: dict, ranker: str) -> str:
  """A code condition's top-1 (value [interval]) by `ranker`."""
  d = cond.get("ranked", {}).get(ranker, {}).get("1") or {}
  return _ci(d.get("value"), d.get("ci"))


def _above_chance(items: dict) -> list:
  """Names whose 95% interval lies above 50%."""
  return [k for k, (v, ci) in items.items() if ci and ci[0] is not None and ci[0] > 0.5]


def _chance_sentence(items: dict, what: str) -> str:
  above = _above_chance(items)
  below = [k for k, (v, ci) in items.items() if ci and ci[1] is not None and ci[1] < 0.5]
  listed = ("all" if len(above) == len(items) and above else ", ".join(above) if above else "none")
  out = f"Chance is 50%. Above chance (95% interval wholly above 50%): {listed} of the {len(items)} {what}."
  if below:
    out += f" Below chance: {', '.join(below)}."
  return out


def report_markdown(res: dict) -> str:
  p = res["preset"]
  L = [f"# hhh laboratory report (preset {p['preset']})", "",
       f"Total wall time: {res['wall_time_s'] / 60:.1f} min"
       + (f" ({len(res.get('reused_stages', []))} stages reused from an earlier run; their times below are from "
          "when they ran)" if res.get("reused_stages") else "") + ". Sizes (non-embedding parameters): "
       + ", ".join(f"{s} {n:,}" for s, n in res["sizes"].items()) + ".", "",
       "Settings: " + ", ".join(f"{k}={v}" for k, v in p.items() if k != "preset") + ".", "",
       "Every accuracy below carries its 95% bootstrap interval over the evaluated examples in brackets "
       "(hhh.eval.intervals: 2,000 resamples of the examples, fixed seed). Two numbers on the same examples are "
       "compared by the paired bootstrap of their difference, which is tighter than comparing the two intervals.", ""]
  n_seeds = len(res.get("across_seeds", {}).get("seeds", [])) or 1
  L += ["## Paper finding vs this run", "",
        "Each of the paper's trends (docs: paper.md section 5) tested at these sizes by the difference that decides "
        "it, with its paired 95% interval. supports: the interval is on the claimed side (above 0; for 'about the "
        "same', inside +-5 points); contradicts: on the other side; cannot tell: the interval straddles the line, "
        "or the measurement cannot decide it here.", "",
        (f"The intervals include training-seed variance: each is a hierarchical bootstrap over the {n_seeds} seeds "
         "and the evaluation examples (the `seeds` column), and each seed's own verdict is counted." if n_seeds > 1
         else "The intervals cover the evaluation examples of one trained model only, not training-seed variance "
              "(`--config.seeds=N` decides each verdict over N seeds)."), ""]
  L += findings.table(res.get("findings") or findings.findings(res)) + [""]
  if res.get("across_seeds"):
    L += seeds_lib.table(res["across_seeds"])
  L += ["## Training runs", "",
        "| run | steps | final loss (mean of the last quarter of logged steps) | held-out loss | held-out accuracy "
        "(trainer, %) | wall time (s) |", "|---|---|---|---|---|---|"]
  for name, m in res["train"].items():
    fl = m.get("final_loss")
    L.append(f"| {name} | {int(m.get('step', 0))} | {_num(fl)} | {_num(m.get('eval/loss'))} | "
             f"{_pct(m.get('eval/accuracy'))} | {res['stage_times_s'].get(name, 0):.0f}"
             + (" (earlier run)" if name in res.get("reused_stages", []) else "") + " |")
  L += ["", "Held-out: the run's own validation split at its last step (4 batches; finetuning 8), as the trainer "
        "logs it (means of per-batch means). Accuracy for the comparison objectives only; chance 50%. A preference "
        "loss of ln 2 = 0.693 is a model that has not separated the responses yet.", ""]
  held = res.get("compare_heldout", {})
  L += ["## Telling better from worse: pairwise accuracy on held-out lab comparisons (%)", "",
        "| size | params | " + " | ".join(OBJECTIVES) + " |", "|---" * (len(OBJECTIVES) + 2) + "|"]
  items = {}
  for s, accs in res["objectives"].items():
    cis = res.get("objectives_ci", {}).get(s, {})
    L.append(f"| {s} | {res['sizes'][s]:,} | " + " | ".join(_ci(accs.get(o), cis.get(o)) for o in OBJECTIVES) + " |")
    items.update({f"{s} {o.split(' (')[0]}": (accs.get(o), cis.get(o)) for o in OBJECTIVES if accs.get(o) is not None})
  L += ["", f"**What this shows.** {held.get('examples', '?')} held-out `lab_compare` contexts (test split), "
        f"{held.get('pairs', '?')} ordered response pairs; an LM ranks responses by mean log-prob, a PM by its score; "
        "a tie counts 1/2. " + _chance_sentence(items, "models") + " Differences between sizes or objectives "
        "smaller than the intervals' half-width are noise; the paper-vs-run table tests the ones that matter.", "",
        "![objectives](plots/objectives.png)", ""]
  if res.get("hhh"):
    n = res.get("hhh_n", 221)
    L += [f"## HHH evaluations (BIG-bench hhh_alignment, {n} comparisons), accuracy %", "",
          "| size | condition | sum | mean | mutual information | score | harmless | helpful | honest | other |",
          "|---|---|---|---|---|---|---|---|---|---|"]
    items = {}
    for s, conds in res["hhh"].items():
      for c, m in conds.items():
        key = "score" if "score" in m else "mi"
        best = m.get(key) or {}
        items[f"{s} {c}"] = (best.get("overall"), best.get("overall_ci"))
        L.append(f"| {s} | [{c}](eval/{s}/eval.md) | " + " | ".join(
            _ci(m.get(k, {}).get("overall"), m.get(k, {}).get("overall_ci")) for k in ("sum", "mean", "mi", "score"))
                 + " | " + " | ".join(_pct(best.get(sub)) for sub in ("harmless", "helpful", "honest", "other")) + " |")
    L += ["", "**What this shows.** " + _chance_sentence(items, "size/condition rows (by mutual information for "
          "LMs, score for the PM)") + " Subset columns use the same method (mutual information for LMs, score for the "
          "PM) and have 43-61 comparisons each, so their intervals are about +-12 to +-15 points. Caveats: ties go to the "
          "first response, which in this data is always the better one (a tie counts as correct; the per-size pages "
          "count ties); contexts and responses longer than the evaluation length "
          f"({p.get('eval_seq_len', '?')} tokens) are cut (counts per size in eval/<size>/eval.md, 'Data'); the prompt "
          f"condition keeps at most {p.get('prompt_tokens', '?')} prompt tokens here (hhh.eval's default keeps what fits in "
          "the model's context, so its prompt numbers differ). Summed log-prob favours short responses, and in BIG-bench "
          "hhh_alignment the better response is the longer one (in characters) in 139 of the 221 comparisons: that "
          "is why the sum column sits below 50%, and why the paper prefers mutual information.", "", "![hhh](plots/hhh.png)", ""]
  else:
    L += ["## HHH evaluations", "", res.get("bigbench_missing", "skipped"), ""]
  if res.get("truthfulqa"):
    L += ["## TruthfulQA MC (%)", "", "| size | condition | MC1 (sum) | MC1 (mean) | MC2 | MC1 (PM score) |",
          "|---|---|---|---|---|---|"]
    for s, conds in res["truthfulqa"].items():
      for c, m in conds.items():
        L.append(f"| {s} | {c} | " + " | ".join(_ci(m.get(k), m.get(k + "_ci"))
                                              for k in ("mc1_sum", "mc1_mean", "mc2", "mc1_score")) + " |")
    L += ["", "**What this shows.** MC1's chance level is 1 / (number of choices) per question (about 20-25% here); "
          "MC2 is the probability mass on the true answer.", ""]
  if res.get("tax"):
    L += ["## Alignment tax: last-word accuracy on the held-out lab corpus (tax_lab_lambada)", "",
          "| size | n | plain | with the HHH prompt | distilled | tax (prompt) | tax (distilled) |",
          "|---|---|---|---|---|---|---|"]
    for s, t in res["tax"].items():
      L.append(f"| {s} | {t['n']} | " + " | ".join(tax_eval.table_cells(t)) + " |")
    for s, c in res.get("code", {}).items():  # code: the LM picks a correct candidate (top-1 by mean log-prob)
      cells = [_top1(c["conditions"].get(k, {}), "lm_mean") for k in ("plain", "prompt", "distilled")]
      cells += [intervals.fmt(c.get("tax", {}).get(k, {}).get("value"), c.get("tax", {}).get(k, {}).get("ci"),
                              signed=True) for k in ("prompt", "distilled")]
      L.append(f"| {s}, code (top-1 of a HumanEval pool by mean log-prob) | {c['problems']} | " + " | ".join(cells)
               + " |")
    L += ["", "**What this shows.** LAMBADA's format (the last word is right when greedy decoding reproduces it) on "
          "held-out dialogues of the embedded corpus: accuracy % [95% interval] and, in brackets, the word's mean "
          "summed log-prob (nats), which is graded where accuracy is near 0; tax = with - without the intervention "
          "(paired interval), negative = a capability cost. The paper's benchmarks (LAMBADA, HellaSwag, ARC, "
          "OpenBookQA, PIQA from TFDS) run with `python -m hhh.eval --config.eval.suites=tax` where their TFDS data "
          "is available.", "", "![tax](plots/tax.png)", ""]
  if res.get("code"):
    L += ["## Code-correctness ranking (HumanEval candidate pools, top-1 %)", "",
          "| size | problems | candidates (correct) | chance | LM sum log-prob | LM mean log-prob | ranked PM |",
          "|---|---|---|---|---|---|---|"]
    for s, c in res["code"].items():
      cond, pool = c["conditions"], c["pool"]
      L.append(f"| {s} | {c['problems']} | {pool['candidates']} ({pool['correct']}) | "
               f"{_ci(c['chance']['1']['value'], c['chance']['1']['ci'])} | {_top1(cond.get('plain', {}), 'lm_sum')} | "
               f"{_top1(cond.get('plain', {}), 'lm_mean')} | {_top1(cond.get('pm', {}), 'pm')} |")
    sbx = next(iter(res["code"].values()))["execution"]["sandbox"]
    L += ["", "**What this shows.** Each problem's pool is its canonical solution and deterministic mutants of it "
          "(a flipped comparison, an integer off by one, swapped returns, a dropped statement); every candidate was "
          "executed against the problem's tests for its label (a mutant that still passes counts as correct), and "
          "the chance line is the pool's correct fraction. The paper's claim: a ranked preference model picks correct "
          "code better than the LM's own likelihood. The lab's models never saw code ranking, so near-chance numbers "
          f"are expected at these sizes. Sandbox: {sandbox.layers(sbx)} (docs/sandbox.md); every candidate and its "
          "verdict: eval/<size>/code_samples.jsonl.", ""]
  if res.get("toxicity"):
    info = res.get("toxicity_info", {})
    st = info.get("settings", {})
    L += [f"## Toxicity of sampled continuations ({info.get('prompts')} embedded prompts in RealToxicityPrompts' "
          f"format, {info.get('challenging')} challenging; k = {st.get('num_samples')} samples of up to "
          f"{st.get('max_new_tokens')} tokens, top-p {st.get('top_p')}; scorer {info.get('scorer', {}).get('name')})",
          "", "| size | condition | expected max toxicity | P(toxic) | mean | challenging: expected max | "
          "challenging: P(toxic) |", "|---|---|---|---|---|---|---|"]
    for s, conds in res["toxicity"].items():
      for c, m in conds.items():
        o, ch = m.get("overall", {}), m.get("challenging", {})
        L.append(f"| {s} | {c} | {_num(o.get('expected_max_toxicity'))} | {_num(o.get('toxicity_probability'))} | "
                 f"{_num(o.get('mean_toxicity'))} | {_num(ch.get('expected_max_toxicity'))} | "
                 f"{_num(ch.get('toxicity_probability'))} |")
    L += ["", "**What this shows.** Toxicity is the offline scorer's probability of offensive language "
          "(alt-profanity-check; it keys on words and is not calibrated to Perspective, docs/toxicity.md); P(toxic) "
          "is the share of prompts with at least one sample scoring >= 0.5. The prompts were written by the project "
          "(half of them open an insult); miniature models trained on the embedded corpus rarely produce the words "
          f"the scorer reacts to, and with {info.get('prompts')} prompts a difference in P(toxic) of one prompt is "
          f"{100 / max(int(info.get('prompts') or 1), 1):.1f} points: differences between conditions here are "
          "mostly noise. Every sample and its score: eval/<size>/toxicity_samples.jsonl.", "",
          "![toxicity](plots/toxicity.png)", ""]
  if res.get("dialogues"):
    L += ["## Sampled dialogues (largest LM; temperature 0.7, top-p 0.9; samples/*.jsonl)", ""]
    for d in res["dialogues"]:
      L += [f"**{d['condition']}** (stop: {d['stop_reason']})", "", "```", (d["context"].strip() + d["sample"]).strip(),
            "```", ""]
  L += _pmp_section(res, p)
  L += ["## Calibration of the preference models", "",
        "| model, comparisons | ECE | response pairs |", "|---|---|---|"]
  for k, r in res.get("calibration", {}).items():
    if r:
      L.append(f"| {k} | {r['ece']:.3f} | {int(r.get('n', 0)) // 2} |")
  L += ["", "**What this shows.** For every pair of a better and a worse response, the model's probability that the "
        "better one is better, sigmoid(score difference), against how often that holds; each pair counts in both "
        "orders, so the diagram is symmetric about (0.5, 0.5). ECE is the count-weighted gap over 10 equal-width "
        "bins. The same models are in the table and in the reliability diagram. A model that says ~50% everywhere "
        "has a small ECE and tells nothing apart: read ECE beside the accuracy tables.", "",
        "![calibration](plots/calibration.png)", "", "## Stage wall times (s)", "",
        ", ".join(f"{k} {v:.0f}" + ("*" if k in res.get("reused_stages", []) else "")
                  for k, v in res["stage_times_s"].items())
        + (" (* reused from an earlier run: the time it took then)" if res.get("reused_stages") else ""), ""]
  if res.get("hhh_timing_s"):
    L += ["HHH evaluation wall time per size (all conditions, s): "
          + ", ".join(f"{k} {v:.1f}" for k, v in res["hhh_timing_s"].items() if v is not None), ""]
  return "\n".join(L)


def _pmp_section(res: dict, p: dict) -> list:
  """The PMP sample-efficiency table: each arm at its rate picked on validation, the paired difference, and the whole
  learning-rate grid (validation accuracy, test accuracy with its interval) with paired differences at matched rates."""
  ho = res.get("pmp_heldout", {})
  L = [f"## PMP sample efficiency (finetuning on lab_compare_hhh at {p.get('pmp_size', '?')}; pairwise accuracy % on "
       f"{ho.get('examples', '?')} held-out {ho.get('task', '?')} comparisons ({ho.get('split', '?')}"
       f" split, {ho.get('pairs', '?')} pairs))", "",
       "| finetuning comparisons | with binary PMP | without PMP | with - without (paired) |", "|---|---|---|---|"]
  ex = res.get("examples", {}).get("pmp", {})
  lr = res.get("pmp_lr", {})

  def diff(a, b):
    if not a or not b:
      return "-"
    r = intervals.bootstrap_diff(a["correct"], b["correct"], a["pairs"], b["pairs"])
    return f"{100 * r['value']:+.1f} [{100 * r['ci'][0]:+.1f}, {100 * r['ci'][1]:+.1f}]"

  def rate(label, n):
    f = lr.get(label, {}).get(n)
    return "" if f is None else f" at {f:g}x"

  for n in sorted(set(res["pmp"]["pmp"]) | set(res["pmp"]["no_pmp"]), key=int):
    L.append(f"| {n} | {_ci(res['pmp']['pmp'].get(n), res.get('pmp_ci', {}).get('pmp', {}).get(n))}{rate('pmp', n)} | "
             f"{_ci(res['pmp']['no_pmp'].get(n), res.get('pmp_ci', {}).get('no_pmp', {}).get(n))}{rate('no_pmp', n)} | "
             f"{diff(ex.get('pmp', {}).get(n), ex.get('no_pmp', {}).get(n))} |")
  grid = res.get("pmp_grid", {})
  if grid:
    L += ["", "The learning-rate grid (x the finetuning rate, 0.01x pretraining; 10x is the PMP rate): validation "
          "accuracy (the trainer's, which picks the rate) / test accuracy [95% interval]; the last column is the paired "
          "test difference at the same rate.", "",
          "| finetuning comparisons | rate | with binary PMP | without PMP | with - without (paired) |",
          "|---|---|---|---|---|"]
    for n in sorted(set(grid.get("pmp", {})) | set(grid.get("no_pmp", {})), key=int):
      a_grid, b_grid = grid.get("pmp", {}).get(n, {}), grid.get("no_pmp", {}).get(n, {})
      for f in sorted(set(a_grid) | set(b_grid), key=float):
        a, b = a_grid.get(f), b_grid.get(f)
        cell = lambda g: "-" if not g else f"{_pct(g['validation'])} / {_ci(g['test'], g['ci'])}"  # noqa: E731
        L.append(f"| {n} | {float(f):g}x | {cell(a)} | {cell(b)} | {diff(a, b)} |")
  L += ["", "**What this shows.** Both arms are scored by hhh.eval on the same held-out test comparisons, so the "
        "differences are paired. Each arm's rate is picked on validation (" + ho.get("selection", "the trainer's "
        "held-out evaluation") + "), never on test. Finetuning without PMP starts a fresh score head. Chance is "
        "50%.", "", "![pmp](plots/pmp.png)", ""]
  return L


OBJECTIVES = ["pretrained LM (mean log-prob)", "imitation (mean log-prob)", "binary", "ranked PM"]
