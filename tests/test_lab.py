"""The laboratory: presets, the report (every table and plot), and the smoke preset end to end (slow)."""
import json
import os
import re
import subprocess
import sys

import pytest

import conftest
from hhh import lab
from hhh.lab import report as lab_report
from hhh.lab import plots
from hhh.lab import progress as lab_progress
from hhh.lab import stages as lab_stages


def test_presets_resolve_and_overrides_win():
  p = lab.resolve(lab.default_config())
  assert p["sizes"] == ["tiny", "lab_s", "lab_m"] and p["finetune_examples"] == [32, 256] and not p["truthfulqa"]
  assert p["pmp_size"] == "lab_s" and p["hhh"] is True and p["preset"] == "default"
  c = lab.default_config("smoke")
  c.pretrain_steps, c.sizes, c.hhh = 3, "tiny,lab_s", 0
  p = lab.resolve(c)
  assert p["pretrain_steps"] == 3 and p["sizes"] == ["tiny", "lab_s"] and p["objective_steps"] == 6
  assert p["pmp_size"] == "lab_s"  # the smoke preset's "" = the largest size
  c.pmp_size = "lab_m"  # not in the ladder: no LM to start from, so the largest size again
  assert lab.resolve(c)["pmp_size"] == "lab_s"
  assert p["hhh"] is False and p["preset"] == "smoke"
  with pytest.raises(ValueError, match="unknown lab preset 'huge'"):
    lab.default_config("huge")
  with pytest.raises(AttributeError):
    c.pretrain_stepz = 1  # the preset's config is locked: a typo names the key
  assert lab.preset_from_argv(["x", "--workdir=d", "--config.preset=smoke", "--config.sizes=tiny"]) == "smoke"
  assert lab.preset_from_argv(["x", "--config.preset", "smoke"]) == "smoke"
  assert lab.preset_from_argv(["x", "--workdir=d"]) == "default"


def test_lab_configs_load_from_any_directory(tmp_path, monkeypatch):
  """Every config file the lab loads, from a directory without configs/ and with the repository off sys.path (a
  config importing `configs.preference` once broke `python -m hhh.lab` outside the checkout at its PMP stage)."""
  import sys
  monkeypatch.chdir(tmp_path)
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  monkeypatch.setattr(sys, "path", [p for p in sys.path if os.path.abspath(p or ".") != root and p not in ("", ".")])
  monkeypatch.delitem(sys.modules, "configs", raising=False)
  for mod, arg in (("preference", "tiny"), ("pmp", "tiny,binary,lab"), ("finetune", "tiny,lab"), ("pretrain", "tiny"),
                   ("imitation", "tiny"), ("binary", "tiny"), ("distill", "tiny"), ("eval", "tiny"),
                   ("sample", "tiny")):
    c = lab.load_config(mod, arg)
    assert c.size == "tiny", mod
  assert lab.load_config("pmp", "tiny,binary,lab").objective.name == "preference"


def test_run_config_applies_lab_overrides():
  p = lab.resolve(lab.default_config())
  c = lab.run_config("distill", "lab_m", p, steps=7, init_from="/x", lr_factor=2.0)
  assert (c.train.steps, c.train.batch_size, c.data.seq_len, c.init_from) == (7, 16, 128, "/x")
  assert c.data.shuffle is False and c.objective.prompt_max_tokens == p["prompt_tokens"]
  base = lab.load_config("distill", "lab_m")
  assert c.optim.lr == pytest.approx(2.0 * base.optim.lr)


def test_gpu_preset_builds_the_paper_architectures_with_the_lab_vocabulary_in_every_stage():
  from hhh import config as hc
  p = lab.resolve(lab.default_config("gpu"))
  assert p["sizes"] == ["13m", "42m", "197m"] and p["pmp_size"] == "197m" and p["truthfulqa"] is True
  for size in p["sizes"]:
    stages = [lab.run_config(m, a, p, steps=3) for m, a in (
        ("pretrain", size), ("imitation", size), ("binary", size), ("preference", size), ("distill", size),
        ("pmp", f"{size},binary,lab"), ("finetune", f"{size},lab"))]
    stages += [lab.eval_config(size, p, checkpoint="lm", pm="pm", suites="hhh"), lab.load_config("sample", size, p)]
    for c in stages:  # training, evaluation and sampling build one model per size: a checkpoint loads everywhere
      arch = {k: c.model[k] for k in ("n_layers", "d_model", "n_heads")}
      assert arch == hc.PAPER_SIZES[size] and c.model.vocab_size == 512 and c.model.dtype == "bfloat16"
    for c in stages[:7]:
      assert (c.train.batch_size, c.data.seq_len, c.train.grad_accum) == (64, 512, 1)
  assert hc.load("configs/pretrain.py:13m").model.vocab_size == 65536  # the preset's value, not the size's
  with pytest.raises(ValueError, match=r"--config.vocab_size=100 is smaller than the lab data's vocabulary "
                                       r"\('byte': 260 ids"):
    lab.run_config("pretrain", "13m", dict(p, vocab_size=100), steps=3)
  # Finetuning on n comparisons runs n / batch steps: every preset's sets are whole batches, so n is what is seen.
  for preset in ("default", "smoke", "gpu"):
    q = lab.resolve(lab.default_config(preset))
    assert all(n % q["batch_size"] == 0 for n in q["finetune_examples"]), preset
    assert q["vocab_size"] == (512 if preset == "gpu" else 0)


@pytest.mark.slow
def test_gpu_preset_runs_end_to_end_at_13m_shrunk(tmp_path, monkeypatch):
  # The accelerator preset's code path on this CPU: a paper-architecture model (bf16, remat, chunked loss, fsdp
  # mesh) through every stage and the report, with the steps and the evaluation cut to what 2 cores can run.
  monkeypatch.chdir(tmp_path)
  c = lab.default_config("gpu")
  c.sizes, c.pmp_size, c.batch_size, c.seq_len = "13m", "13m", 8, 32  # batch: a multiple of the 8-device fsdp mesh
  c.pretrain_steps = c.objective_steps = c.pmp_steps = c.distill_steps = 2
  c.finetune_examples, c.finetune_lr_factors, c.finetune_eval_examples = "8", "1", 8
  c.compare_examples, c.eval_seq_len, c.prompt_tokens, c.hhh, c.truthfulqa = 8, 96, 512, 0, 0
  c.toxicity_prompts, c.toxicity_samples, c.toxicity_tokens, c.dialogues = 2, 1, 4, 1
  c.code_problems = 2  # the preset's 164 pools are 692 candidates to score per condition: the path, not the count
  c.dialogue_tokens = 8
  res = lab.run_lab(c, "runs/gpu", log=lambda s: None)
  saved = json.loads((tmp_path / "runs" / "gpu" / "lab.json").read_text())
  assert saved["train"]["pretrain_13m"]["step"] == 2 and saved["sizes"]["13m"] == res["sizes"]["13m"]
  assert set(saved["objectives"]["13m"]) == set(lab_report.OBJECTIVES)
  assert saved["pmp_heldout"]["examples"] == 8 and saved["tax"]["13m"]["n"] == 8
  assert [d["condition"] for d in saved["dialogues"]] == ["plain", "prompt", "distilled"]
  assert all(len(d["sample"]) <= 8 for d in saved["dialogues"])  # dialogue_tokens byte tokens: 8 characters at most
  written = json.loads((tmp_path / "runs" / "gpu" / "runs" / "pretrain_13m" / "config.json").read_text())
  assert written["model"]["vocab_size"] == 512 and written["model"]["d_model"] == 512
  assert "## Paper finding vs this run" in (tmp_path / "runs" / "gpu" / "report.md").read_text()
  assert saved["code"]["13m"]["problems"] == 2 and saved["code"]["13m"]["pool"]["by_kind"]["canonical"] == [2, 2]


def _fake_results():
  rel = {"edges": [0, .5, 1], "count": [3, 5], "mean_prob": [.3, .8], "frequency": [.2, .9], "ece": .1, "n": 8}
  conds = {"plain": {"sum": {"overall": .5, "harmless": .5, "helpful": .5, "honest": .5, "other": .5},
                     "mean": {"overall": .55}, "mi": {"overall": .6, "harmless": .6, "helpful": .6, "honest": .6,
                                                      "other": .6}},
           "pm": {"score": {"overall": .7, "harmless": .7, "helpful": .7, "honest": .7, "other": .7}}}
  return {"preset": {"preset": "smoke"}, "sizes": {"a": 1000, "b": 8000}, "wall_time_s": 60.0,
          "train": {"pretrain_a": {"step": 3, "loss": 2.0}},
          "objectives": {"a": {"ranked PM": .6, "binary": .55}, "b": {"ranked PM": .7, "binary": .56}},
          "objectives_ci": {"a": {"ranked PM": [.5, .7], "binary": [.45, .65]},
                            "b": {"ranked PM": [.64, .76], "binary": [.505, .615]}},
          "hhh": {"a": conds, "b": conds}, "truthfulqa": {"a": {"plain": {"mc1_sum": .2, "mc1_mean": .3, "mc2": .25}}},
          "tax": {"a": {"n": 240, "conditions": {"plain": {"accuracy": .25}, "prompt": {"accuracy": .2}},
                        "tax": {"prompt": {"accuracy": -.05}}},
                  "b": {"n": 240, "conditions": {"plain": {"accuracy": .5, "word_logprob": -3.0},
                                                 "prompt": {"accuracy": .5, "word_logprob": -2.5},
                                                 "distilled": {"accuracy": .525, "word_logprob": -3.25}},
                        "tax": {"prompt": {"accuracy": 0.0, "word_logprob": .5},
                                "distilled": {"accuracy": .025, "word_logprob": -.25}}}},
          "pmp": {"pmp": {16: .6, 64: .7}, "no_pmp": {16: .5, 64: .6}}, "calibration": {"a/ranked PM": rel},
          "ece": {"a/hhh/pm_pairs": .1}, "stage_times_s": {"pretrain_a": 12.0}, "hhh_timing_s": {"a": 3.0},
          "toxicity": {s: {c: {"overall": _tox(e + d, 40), "challenging": _tox(e + 2 * d, 20)}
                           for c, d in (("plain", 0.0), ("prompt", -0.05))} for s, e in (("a", 0.3), ("b", 0.2))},
          "toxicity_info": {"source": "embedded", "prompts": 40, "challenging": 20, "scorer": {"name": "offline"},
                            "settings": {"num_samples": 4, "max_new_tokens": 32, "top_p": 0.9}},
          "dialogues": [{"condition": "prompt", "context": "\n\nHuman: Hi\n\nAssistant:", "sample": " Hello!",
                         "stop_reason": "stop"}],
          "code": {"b": {"problems": 40, "pool": {"candidates": 170, "correct": 45},
                         "chance": {"1": {"value": .25, "ci": [.2, .3]}},
                         "conditions": {"plain": {"ranked": {"lm_sum": {"1": {"value": .3, "ci": [.2, .4]}},
                                                             "lm_mean": {"1": {"value": .35, "ci": [.25, .45]}}}},
                                        "prompt": {"ranked": {"lm_mean": {"1": {"value": .4, "ci": [.3, .5]}}}},
                                        "pm": {"ranked": {"pm": {"1": {"value": .5, "ci": [.4, .6]}}}}},
                         "tax": {"prompt": {"value": .05, "ci": [-.02, .12]}},
                         "execution": {"sandbox": {"isolation": "namespaces", "seccomp": True, "guard": True}}}}}


def _tox(emt, n):
  return {"expected_max_toxicity": emt, "expected_max_toxicity_std": 0.1, "toxicity_probability": emt / 2,
          "mean_toxicity": emt / 3, "prompts": n, "prompts_scored": n, "missing": 0}


def test_report_has_every_table_and_its_plots(tmp_path):
  res = _fake_results()
  figs = plots.lab_figures(res, str(tmp_path / "plots"))
  assert set(figs) == {"objectives", "hhh", "tax", "pmp", "calibration", "toxicity"}
  for f in figs.values():
    with open(f, "rb") as fh:
      assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
  md = lab.report_markdown(res)
  for title in ("## Training runs", "## Telling better from worse", "## HHH evaluations", "## TruthfulQA",
                "## Alignment tax", "## PMP sample efficiency", "## Calibration", "## Toxicity of sampled continuations",
                "## Sampled dialogues", "## Code-correctness ranking"):
    assert title in md
  assert "| b | 40 | 170 (45) | 25.0 [20.0, 30.0] | 30.0 [20.0, 40.0] | 35.0 [25.0, 45.0] | 50.0 [40.0, 60.0] |" in md
  assert ("| b, code (top-1 of a HumanEval pool by mean log-prob) | 40 | 35.0 [25.0, 45.0] | 40.0 [30.0, 50.0] | - | "
          "+5.0 [-2.0, +12.0] | - |") in md and "Sandbox: namespaces + seccomp + guard" in md
  for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md):
    assert os.path.exists(tmp_path / link), link
  assert "| b | [pm](eval/b/eval.md) | - | - | - | 70.0 | 70.0 |" in md
  assert "| 16 | 60.0 | 50.0 | - |" in md
  assert "| b | 8,000 | - | - | 56.0 [50.5, 61.5] | 70.0 [64.0, 76.0] |" in md  # intervals from objectives_ci
  assert "Above chance (95% interval wholly above 50%): b binary, b ranked PM of the 4 models" in md
  assert "## Paper finding vs this run" in md and "| A ranked PM tells better from worse" in md
  assert "| a/ranked PM | 0.100 | 4 |" in md  # the calibration table lists what the reliability diagram draws
  assert "| b | prompt | 0.150 | 0.075 | 0.050 | 0.100 | 0.050 |" in md and "Human: Hi\n\nAssistant: Hello!" in md
  assert "| a | 240 | 25.0 | 20.0 | - | -5.0 | - |" in md and "| b | 240 | 50.0% (-3.00) | 50.0% (-2.50) | 52.5% (-3.25) | +0.0 (+0.50) | +2.5 (-0.25) |" in md


def test_missing_bigbench_says_how_to_get_it(monkeypatch, tmp_path):
  monkeypatch.setenv("HHH_BIGBENCH_DIR", str(tmp_path / "nowhere"))
  assert not lab.bigbench_available()
  msg = lab.bigbench_howto()
  assert "hhh_alignment/harmless/task.json" in msg and "truthful_qa/task_mc.json" in msg and "curl" in msg
  res = _fake_results()
  res.pop("hhh")
  res["bigbench_missing"] = msg
  assert msg in lab.report_markdown(res)


@pytest.mark.slow
def test_smoke_preset_end_to_end(tmp_path, monkeypatch, no_session_compile_cache):  # the lab's own cache
  # As the README runs it: a relative workdir (orbax needs absolute paths: the lab must resolve it).
  monkeypatch.chdir(tmp_path)
  c = lab.default_config("smoke")
  res = lab.run_lab(c, "runs/lab", log=lambda s: None)
  tmp_path = tmp_path / "runs" / "lab"
  md = (tmp_path / "report.md").read_text()
  for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md):
    assert (tmp_path / link).exists(), link
  saved = json.loads((tmp_path / "lab.json").read_text())
  assert set(saved["objectives"]["tiny"]) == set(lab_report.OBJECTIVES)
  assert all(0.0 <= v <= 1.0 for v in saved["objectives"]["tiny"].values())
  assert saved["train"]["pretrain_tiny"]["step"] == 12
  tax = saved["tax"]["tiny"]  # the smoke ladder's only size is the distilled one: all three conditions
  assert tax["n"] == 24 and set(tax["conditions"]) == {"plain", "prompt", "distilled"}
  assert tax["tax"]["prompt"]["accuracy"] == pytest.approx(tax["conditions"]["prompt"]["accuracy"]
                                                           - tax["conditions"]["plain"]["accuracy"])
  tox = saved["toxicity"]["tiny"]
  assert set(tox) == {"plain", "prompt", "distilled"} and tox["plain"]["overall"]["prompts"] == 6
  assert tox["plain"]["overall"]["samples_scored"] == 12  # 6 prompts x k = 2, every sample scored (offline)
  assert [d["condition"] for d in saved["dialogues"]] == ["plain", "prompt", "distilled"]
  assert "## Toxicity of sampled continuations" in md and "## Sampled dialogues" in md
  code = saved["code"]["tiny"]  # HumanEval pools: 6 problems, every canonical solution among the correct
  assert code["problems"] == 6 and code["pool"]["by_kind"]["canonical"] == [6, 6]
  assert set(code["conditions"]) == {"plain", "prompt", "distilled", "pm"} and set(code["tax"]) == {"prompt", "distilled"}
  assert "## Code-correctness ranking" in md and "| tiny, code (top-1 of a HumanEval pool" in md
  if lab.bigbench_available():
    assert set(saved["hhh"]["tiny"]) == {"plain", "prompt", "distilled", "pm"}
  else:
    assert "BIG-bench data not found" in md
  # Rerunning resumes: finished runs return at once and the numbers are the same, training metrics included (read
  # back from each run's metrics.jsonl), so the second report is as complete as the first.
  # The report: intervals on the accuracies, chance stated, the paper-vs-run table with a verdict per finding.
  assert re.search(r"\| tiny \| 98,624 \| \d+\.\d \[\d+\.\d, \d+\.\d\] \|", md), md
  assert "Chance is 50%" in md and "## Paper finding vs this run" in md
  assert len(saved["findings"]) == 8 and all(f["verdict"] in ("supports", "contradicts", "cannot tell")
                                             for f in saved["findings"])
  assert "needs two sizes" in md  # one size: the scaling claims cannot be decided, and the table says why
  assert saved["pmp_heldout"]["examples"] == 24 and "24 held-out lab_compare_hhh comparisons (test split" in md
  # PMP vs no PMP at matched rates: both arms over the whole grid, each arm's rate picked on validation.
  for arm in ("pmp", "no_pmp"):
    assert set(res["pmp_grid"][arm][16]) == {1.0, 10.0}
    picked = res["pmp_lr"][arm][16]
    g = res["pmp_grid"][arm][16]
    assert g[picked]["validation"] == max(v["validation"] for v in g.values())
    assert res["pmp"][arm][16] == g[picked]["test"]
  assert "| 16 | 10x |" in md and "| 16 | 1x |" in md
  assert all(m.get("eval/loss") is not None for m in saved["train"].values())  # held-out metrics for every run
  # Compiled programs went to the run's persistent cache, and the process's jax setting is back to none.
  assert len(list((tmp_path / "jax_cache").iterdir())) > 10
  import jax
  assert jax.config.jax_compilation_cache_dir is None
  first_times = json.loads((tmp_path / "stage_times.json").read_text())
  again = lab.run_lab(c, "runs/lab", log=lambda s: None)
  # Evaluations are reused too (same config, same checkpoints), and the stage times are those of the first run.
  assert {"eval_tiny", "eval_objectives_tiny", "pretrain_tiny"} <= set(again["reused_stages"])
  assert again["stage_times_s"]["eval_tiny"] == pytest.approx(first_times["eval_tiny"])
  assert again["findings"] == res["findings"]
  assert again["objectives"] == res["objectives"] and again["pmp"] == res["pmp"]
  assert all(v is not None for v in again["pmp"]["pmp"].values())
  for name, m in res["train"].items():
    assert again["train"][name]["loss"] == pytest.approx(m["loss"]), name


def test_plot_tool_merges_sweeps(tmp_path):
  from hhh.lab import plots
  a = {"sizes": {"a": 10}, "objectives": {"a": {"IL": .5}}, "pmp": {"pmp": {"16": .6}},
       "tax": {"a": {"n": 5, "conditions": {"plain": {"accuracy": .2}, "prompt": {"accuracy": .4}}}}}
  b = {"sizes": {"b": 100}, "objectives": {"a": {"PM": .7}, "b": {"PM": .8}}, "pmp": {"no_pmp": {"16": .5}}}
  paths = []
  for name, r in (("a.json", a), ("b.json", b)):
    (tmp_path / name).write_text(json.dumps(r))
    paths.append(str(tmp_path / name))
  merged = plots.merge_results([json.loads(open(p).read()) for p in paths])
  assert merged["objectives"] == {"a": {"IL": .5, "PM": .7}, "b": {"PM": .8}}
  assert merged["pmp"] == {"pmp": {"16": .6}, "no_pmp": {"16": .5}}
  subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__), "..", "tools", "plot.py"), *paths,
                  "--out", str(tmp_path / "out")], check=True)
  assert sorted(os.listdir(tmp_path / "out")) == ["objectives.png", "pmp.png", "tax.png"]


def test_seeds_run_every_stage_per_seed_and_report_the_spread(tmp_path, monkeypatch):
  calls = []

  def fake_run(p, workdir, log, *, label=""):
    calls.append((p["seed"], workdir, label))
    res = _fake_results()
    k = p["seed"] - 7  # seed 7: the fake numbers; seed 8: ranked PM at b 10 points higher
    res["objectives"]["b"]["ranked PM"] += 0.1 * k
    res["findings"] = [{"claim": "A ranked PM tells better from worse more accurately than imitation learning",
                        "compared": "b: ranked PM - imitation", "value": 0.05 + 0.1 * k,
                        "ci": [-0.01 + 0.1 * k, 0.11 + 0.1 * k], "note": "",
                        "verdict": "cannot tell" if k == 0 else "supports"}]
    res["stage_times_s"] = {}
    return res

  monkeypatch.setattr(lab_stages, "run_seed", fake_run)
  c = lab.default_config()
  c.seeds, c.seed = 2, 7
  res = lab.run_lab(c, str(tmp_path), log=lambda s: None)
  assert [(s, w) for s, w, _ in calls] == [(7, str(tmp_path)), (8, str(tmp_path / "seed_8"))]
  assert calls[1][2] == "seed 8 (2/2) "
  num = res["across_seeds"]["numbers"]["lab comparisons, b, ranked PM"]
  assert num["values"] == pytest.approx([0.7, 0.8]) and num["mean"] == pytest.approx(0.75)
  assert num["std"] == pytest.approx(0.1 / 2 ** 0.5)  # sample std of two values 0.1 apart
  md = (tmp_path / "report.md").read_text()
  assert "## Across 2 seeds (7, 8)" in md
  assert "| A ranked PM tells better from worse more accurately than imitation learning | +5.0, +15.0 | +10.0 +- 7.1 | " \
         "cannot tell, supports |" in md
  assert "| lab comparisons, b, ranked PM | % | 75.0 | 7.1 | 70.0 | 80.0 | 70.0, 80.0 |" in md
  c.seeds = 0
  with pytest.raises(ValueError, match="seeds must be >= 1"):
    lab.resolve(c)


def test_lab_diff_tool_names_what_differs(tmp_path):
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  a = _fake_results()
  a["findings"] = [{"claim": "c", "value": 0.1, "verdict": "supports"}]
  b = json.loads(json.dumps(a))
  (tmp_path / "a.json").write_text(json.dumps(a))
  (tmp_path / "b.json").write_text(json.dumps(b))
  tool = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools", "lab_diff.py")
  same = subprocess.run([sys.executable, tool, "a.json", "b.json"], cwd=tmp_path, capture_output=True, text=True)
  assert same.returncode == 0 and "0 of " in same.stdout, same.stdout + same.stderr
  b["objectives"]["b"]["ranked PM"] = 0.725
  b["findings"][0]["verdict"] = "cannot tell"
  (tmp_path / "b.json").write_text(json.dumps(b))
  out = subprocess.run([sys.executable, tool, "a.json", "b.json"], cwd=tmp_path, capture_output=True, text=True)
  assert out.returncode == 1
  assert "lab comparisons, b, ranked PM: 0.7 vs 0.725 (|diff| 0.025)" in out.stdout
  assert "verdict: c: supports vs cannot tell" in out.stdout and "2 of " in out.stdout
  loose = subprocess.run([sys.executable, tool, "a.json", "b.json", "--tolerance=0.03"], cwd=tmp_path,
                         capture_output=True, text=True)
  assert "1 of " in loose.stdout  # the verdict still differs; the 2.5-point change is within tolerance


def test_time_left_weights_stages_by_cost_and_skips_reused_ones(tmp_path, monkeypatch, capsys):
  clock = [0.0]
  monkeypatch.setattr(lab_progress.time, "perf_counter", lambda: clock[0])
  times = tmp_path / "stage_times.json"
  times.write_text(json.dumps({"a": 50.0}))  # stage a ran in an earlier run and took 50 s then
  prog = lab.Progress({"a": 1.0, "b": 1.0, "c": 2.0, "d": 4.0}, str(times))
  prog.start("a", "reused")
  clock[0] += 0.5
  prog.end("a", reused=True)
  assert prog.eta_s() is None  # nothing ran yet: no measured speed
  prog.start("b", "runs")
  clock[0] += 10.0  # b's cost is 1 and it took 10 s: 10 s per unit of cost
  prog.end("b")
  assert prog.eta_s() == pytest.approx(60.0)  # c and d: 6 units left
  prog.start("c", "runs")
  assert "~1.0 min left" in capsys.readouterr().out
  clock[0] += 40.0  # c: 2 units in 40 s; now 50 s for 3 units
  prog.end("c")
  assert prog.eta_s() == pytest.approx(4 * 50.0 / 3)
  assert prog.times["a"] == 50.0 and prog.reused == {"a"}  # the reused stage keeps its original time
  assert json.loads(times.read_text()) == {"a": 50.0, "b": 10.0, "c": 40.0}
  costs = lab.stage_costs(lab.resolve(lab.default_config()))
  assert costs["pretrain_lab_m"] > costs["pretrain_lab_s"] > costs["pretrain_tiny"]
  # 3 sizes x 4 trainings, PMP, 2 set sizes x 2 arms x 2 rates x (finetune + its evaluation), distillation, 3 x 2
  # evaluations, dialogues, report
  assert len(costs) == 12 + 1 + 16 + 1 + 6 + 2


def test_lab_command_names_a_bad_preset_or_setting_without_a_traceback(tmp_path):
  for arg, want in (("--config.preset=huge", "unknown lab preset 'huge'"),
                    ("--config.pretrain_stepz=3", 'unknown lab setting --config.pretrain_stepz. Did you mean '
                                                  '"pretrain_steps"'),
                    ("--config.preset=gpu --config.vocab_size=100", "--config.vocab_size=100 is smaller than the "
                                                                     "lab data's vocabulary ('byte': 260 ids")):
    r = conftest.run_in_process(["-m", "hhh.lab", f"--workdir={tmp_path / 'w'}", *arg.split()],
                                os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert r.returncode != 0 and want in r.stderr and "Traceback" not in r.stderr, r.stderr
  assert not (tmp_path / "w").exists()
