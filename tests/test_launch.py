"""launch/*.sh: the commands each dry run prints, argument errors, and the remote scripts run for real.

Dry runs are parsed back with shlex, so a quoting mistake fails here. A fake `gcloud` on PATH
records every invocation: dry runs must record none, and real runs must execute exactly what the
dry run printed. The remote scripts run.sh/kill.sh send to the workers are executed locally with
fake `curl` (worker id) and `sudo`, and a stub .venv/bin/python that echoes its argv, so the
whole path "user argv -> local quoting -> remote shell -> python argv" is checked end to end.
"""

import json
import os
import shlex
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch"
SCRIPTS = ["create.sh", "setup.sh", "run.sh", "logs.sh", "kill.sh", "delete.sh", "local.sh"]

NASTY = "--config.note=it's a \"test\" with $HOME and `backticks`"


def _exe(path: Path, text: str) -> Path:
  path.write_text(text)
  path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
  return path


@pytest.fixture
def fake(tmp_path):
  """PATH with a recording gcloud; a clean env without HHH_* defaults."""
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  record = tmp_path / "gcloud-calls.jsonl"
  _exe(bin_dir / "gcloud", f"""#!{sys.executable}
import json, os, sys
with open({str(record)!r}, "a") as f:
  f.write(json.dumps(sys.argv[1:]) + "\\n")
node = sys.argv[5] if len(sys.argv) > 5 else ""
sys.stdout.write(os.environ.get("FAKE_GCLOUD_OUT_" + node.replace("-", "_"), ""))
sys.exit(int(os.environ.get("FAKE_GCLOUD_RC_" + node.replace("-", "_"), "0")))
""")
  env = {k: v for k, v in os.environ.items() if not k.startswith("HHH_") and k != "XLA_FLAGS"}
  env["PATH"] = f"{bin_dir}:{env['PATH']}"
  env["TMPDIR"] = str(tmp_path)
  return {"env": env, "record": record, "tmp": tmp_path, "bin": bin_dir}


def sh(fake, script, *args, check=True):
  r = subprocess.run(["bash", str(LAUNCH / script), *args], capture_output=True, text=True,
                     env=fake["env"], cwd=fake["tmp"], timeout=60)
  if check:
    assert r.returncode == 0, r.stderr
  return r


def tokens(line):
  lex = shlex.shlex(line, posix=True, punctuation_chars=True)
  lex.whitespace_split = True
  return list(lex)


def dry(fake, script, *args):
  """The printed commands, each as a token list; asserts nothing was executed."""
  r = sh(fake, script, "--dry-run", *args)
  lines = r.stdout.splitlines()
  assert lines and all(l.startswith("+ ") for l in lines), r.stdout
  assert not fake["record"].exists(), "dry run executed gcloud"
  return [tokens(l[2:]) for l in lines]


def gcloud_calls(fake):
  if not fake["record"].exists():
    return []
  return [json.loads(l) for l in fake["record"].read_text().splitlines()]


def remote_of(cmd):
  [c] = [t for t in cmd if t.startswith("--command=")]
  return c[len("--command="):]


def test_every_script_has_help_and_is_strict():
  for script in SCRIPTS:
    r = subprocess.run(["bash", str(LAUNCH / script), "--help"], capture_output=True, text=True)
    assert r.returncode == 0, script
    assert r.stdout.startswith(f"usage: launch/{script}"), script
    assert "--dry-run" in r.stdout, script
    text = (LAUNCH / script).read_text()
    assert "set -euo pipefail" in text, script


# ---------------------------------------------------------------- create.sh

@pytest.mark.parametrize("accel, runtime", [
    ("v4-32", "tpu-ubuntu2204-base"),
    ("v5litepod-16", "v2-alpha-tpuv5-lite"),
    ("v5p-128", "v2-alpha-tpuv5"),
    ("v6e-64", "v2-alpha-tpuv6e"),
])
def test_create_tpu_vm(fake, accel, runtime):
  [cmd] = dry(fake, "create.sh", "--name", "hhh-a", "--zone", "us-east5-a", "--project=lab",
              "--accelerator-type", accel)
  assert cmd == ["gcloud", "compute", "tpus", "tpu-vm", "create", "hhh-a", "--zone=us-east5-a",
                 "--project=lab", f"--accelerator-type={accel}", f"--version={runtime}"]


def test_create_spot_with_explicit_runtime_and_extra_flags(fake):
  [cmd] = dry(fake, "create.sh", "--name=a", "--zone=z", "--accelerator-type=v5p-8",
              "--runtime-version=v2-custom", "--spot", "--", "--labels=team=hhh", "--network=my net")
  assert cmd == ["gcloud", "compute", "tpus", "tpu-vm", "create", "a", "--zone=z",
                 "--accelerator-type=v5p-8", "--version=v2-custom", "--spot", "--labels=team=hhh",
                 "--network=my net"]


def test_create_queued_single_slice(fake):
  [cmd] = dry(fake, "create.sh", "--name", "a", "--zone", "z", "--accelerator-type", "v5p-128",
              "--queued", "--reserved", "--valid-until-duration", "6h")
  assert cmd == ["gcloud", "compute", "tpus", "queued-resources", "create", "a", "--zone=z",
                 "--accelerator-type=v5p-128", "--runtime-version=v2-alpha-tpuv5", "--node-id=a",
                 "--valid-until-duration=6h", "--reserved"]


def test_create_multislice_uses_queued_resources(fake):
  [cmd] = dry(fake, "create.sh", "--name", "ms", "--zone", "z", "--accelerator-type", "v5p-128",
              "--num-slices", "4", "--spot")
  assert cmd == ["gcloud", "compute", "tpus", "queued-resources", "create", "ms", "--zone=z",
                 "--accelerator-type=v5p-128", "--runtime-version=v2-alpha-tpuv5",
                 "--node-count=4", "--node-prefix=ms", "--spot"]


@pytest.mark.parametrize("args, message", [
    (["--zone", "z", "--accelerator-type", "v5p-8"], "error: --name is required"),
    (["--name", "a", "--accelerator-type", "v5p-8"], "error: --zone is required"),
    (["--name", "a", "--zone", "z"], "error: --accelerator-type is required"),
    (["--name", "a", "--zone", "z", "--accelerator-type", "v5p"], "--accelerator-type looks wrong: 'v5p'"),
    (["--name", "a", "--zone", "z", "--accelerator-type", "v9x-8"], "no default runtime version for 'v9x-8'"),
    (["--name", "a", "--zone", "z", "--accelerator-type", "v5p-8", "--spot", "--reserved"],
     "--spot and --reserved are mutually exclusive"),
    (["--name", "a", "--zone", "z", "--accelerator-type", "v5p-8", "--num-slices", "0"],
     "--num-slices must be a positive integer, got '0'"),
    (["--name", "a", "--zone", "z", "--accelerator-type", "v5p-8", "--valid-until-duration", "1h"],
     "--valid-until-duration needs --queued"),
    (["--name", "a", "--zone", "z", "--accelerator-type", "v5p-8", "--bogus"], "unknown argument: --bogus"),
    (["--name"], "--name needs a value"),
])
def test_create_errors(fake, args, message):
  r = sh(fake, "create.sh", "--dry-run", *args, check=False)
  assert r.returncode == 2
  assert message in r.stderr
  assert r.stdout == ""


def test_env_defaults_for_name_zone_project(fake):
  fake["env"].update(HHH_TPU_NAME="from-env", HHH_ZONE="europe-west4-a", HHH_PROJECT="p1")
  [cmd] = dry(fake, "delete.sh")
  assert cmd == ["gcloud", "compute", "tpus", "tpu-vm", "delete", "from-env",
                 "--zone=europe-west4-a", "--project=p1"]


def test_real_run_executes_exactly_what_dry_run_prints(fake):
  args = ["--name", "a", "--zone", "z", "--accelerator-type", "v5p-128", "--num-slices", "2",
          "--", "--labels=x=y"]
  [printed] = dry(fake, "create.sh", *args)
  r = sh(fake, "create.sh", *args)
  assert tokens(r.stdout[2:].strip()) == printed
  assert gcloud_calls(fake) == [printed[1:]]


# ---------------------------------------------------------------- setup.sh

def test_setup_copies_tree_to_all_workers_of_all_slices(fake):
  cmds = dry(fake, "setup.sh", "--name", "ms", "--zone", "z", "--project", "p", "--num-slices", "2")
  tarball = str(fake["tmp"] / "hhh-src-ms.tar.gz")
  assert cmds[0] == ["tar", "-czf", tarball, "--exclude=.git", "--exclude=.venv", "--exclude=logs",
                     "--exclude=__pycache__", "--exclude=*.egg-info", "--exclude=.pytest_cache",
                     "-C", str(ROOT), "."]
  assert cmds[1] == ["gcloud", "compute", "tpus", "tpu-vm", "scp", tarball, "ms-0:hhh-src.tar.gz",
                     "--zone=z", "--project=p", "--worker=all"]
  assert cmds[2] == ["gcloud", "compute", "tpus", "tpu-vm", "scp", tarball, "ms-1:hhh-src.tar.gz",
                     "--zone=z", "--project=p", "--worker=all"]
  for node, cmd in zip(["ms-0", "ms-1"], cmds[3:]):
    assert cmd[:9] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", node, "--zone=z",
                       "--project=p", "--worker=all"]
    remote = remote_of(cmd)
    assert remote.startswith("set -e; mkdir -p ~/hhh && tar -xzf ~/hhh-src.tar.gz -C ~/hhh && ")
    assert "cd ~/hhh && python3 -m venv .venv && .venv/bin/pip install -q -U pip" in remote
    assert ".venv/bin/pip install -q -e '.[tpu]'" in remote
  assert len(cmds) == 5
  assert not Path(tarball).exists()


def test_setup_from_git(fake):
  [cmd] = dry(fake, "setup.sh", "--name", "a", "--zone", "z", "--repo", "https://example.com/hhh.git",
              "--ref", "v1.2", "--remote-dir", "/opt/hhh", "--python", "python3.11", "--internal-ip")
  assert cmd[:10] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "a", "--zone=z", "--worker=all",
                      "--internal-ip", cmd[9]]
  remote = remote_of(cmd)
  assert remote.startswith("set -e; if [ ! -d /opt/hhh/.git ]; then git clone "
                           "https://example.com/hhh.git /opt/hhh; fi; git -C /opt/hhh fetch origin v1.2 "
                           "&& git -C /opt/hhh checkout --force --detach FETCH_HEAD && ")
  assert "cd /opt/hhh && python3.11 -m venv .venv" in remote


def test_setup_tarball_really_excludes_venv_and_git(fake):
  r = sh(fake, "setup.sh", "--name", "a", "--zone", "z", "--tarball", str(fake["tmp"] / "src.tgz"))
  names = subprocess.run(["tar", "-tzf", str(fake["tmp"] / "src.tgz")], capture_output=True,
                         text=True, check=True).stdout.split()
  assert "./launch/run.sh" in names and "./hhh/core/distributed.py" in names
  assert not [n for n in names if n.startswith(("./.venv/", "./.git/", "./logs/"))]
  calls = gcloud_calls(fake)
  assert [c[:4] for c in calls] == [["compute", "tpus", "tpu-vm", "scp"], ["compute", "tpus", "tpu-vm", "ssh"]]
  assert r.stdout.count("\n+ ") == 2


# ---------------------------------------------------------------- run.sh

TRAIN = ["python", "-m", "hhh.train", "--config=configs/preference.py:52b", NASTY,
         "--config.lr=1e-4", "--config.name=pm 52b"]


def program_argv(remote):
  """The `env ... python ...` argv inside run.sh's remote script."""
  start = remote.index("{ env ") + 2
  end = remote.index("; rc=$?")
  return shlex.split(remote[start:end])


def test_run_single_slice(fake):
  [cmd] = dry(fake, "run.sh", "--name", "hhh-v5p", "--zone", "us-east5-a", "--project", "lab",
              "--run-name", "r1", "--env", "XLA_FLAGS=--xla_dump_to=/tmp/a b", "--", *TRAIN)
  bar = cmd.index("|")
  ssh, split = cmd[:bar], cmd[bar + 1:]
  assert ssh[:9] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "hhh-v5p", "--zone=us-east5-a",
                     "--project=lab", "--worker=all"]
  assert ssh[10:] == ["2", ">&", "1"]
  assert split == ["bash", str(LAUNCH / "split_logs.sh"), str(ROOT / "logs" / "hhh-v5p"), "0"]
  remote = remote_of(ssh)
  assert program_argv(remote) == [
      "env", "JAX_PLATFORMS=tpu", "HHH_DISTRIBUTED=on", "PYTHONUNBUFFERED=1", "HHH_RUN_NAME=r1",
      "XLA_FLAGS=--xla_dump_to=/tmp/a b", ".venv/bin/python", "-m", "hhh.train",
      "--config=configs/preference.py:52b", NASTY, "--config.lr=1e-4", "--config.name=pm 52b"]
  assert "cd ~/hhh || exit 4; mkdir -p logs/r1 && ln -sfn r1 logs/latest" in remote
  assert "sudo lsof -t -w /dev/accel* /dev/vfio/*" in remote and "sudo rm -f /tmp/libtpu_lockfile" in remote
  assert remote.endswith("2>&1 | tee logs/r1/worker-$W.log | sed -u \"s/^/[worker $W] /\"")


def test_run_no_kill_and_non_python_command(fake):
  [cmd] = dry(fake, "run.sh", "--name", "a", "--zone", "z", "--no-kill", "--run-name", "r",
              "--", "bash", "-c", "nvidia-smi; echo done")
  remote = remote_of(cmd)
  assert "lsof" not in remote and "libtpu_lockfile" not in remote
  assert program_argv(remote)[-3:] == ["bash", "-c", "nvidia-smi; echo done"]


def test_run_multislice_one_ssh_per_slice_in_parallel(fake):
  cmds = dry(fake, "run.sh", "--name", "ms", "--zone", "z", "--num-slices", "2", "--run-name", "r",
             "--log-dir", "/tmp/L", "--", "python", "-m", "hhh.eval", "--config=c.py")
  assert len(cmds) == 3 and cmds[2] == ["wait"]
  for s, cmd in enumerate(cmds[:2]):
    assert cmd[5] == f"ms-{s}" and cmd[7] == "--worker=all"
    assert cmd[-1] == "&"
    assert cmd[-5:-1] == ["bash", str(LAUNCH / "split_logs.sh"), f"/tmp/L/slice-{s}", "0" if s == 0 else "-1"]
    assert program_argv(remote_of(cmd))[-4:] == [".venv/bin/python", "-m", "hhh.eval", "--config=c.py"]


def test_run_detach(fake):
  [cmd] = dry(fake, "run.sh", "--name", "a", "--zone", "z", "--detach", "--run-name", "r", "--", *TRAIN)
  assert "|" not in cmd
  remote = remote_of(cmd)
  nohup = remote[remote.index("nohup bash -c ") + len("nohup bash -c "):]
  inner = shlex.split(nohup)[0]
  assert inner.endswith(" > logs/r/worker-$W.log 2>&1; echo hhh-exit-code=$? >> logs/r/worker-$W.log")
  assert shlex.split(inner[:inner.index(" > logs/")])[-7:] == [".venv/bin/python", *TRAIN[1:]]


@pytest.mark.parametrize("args, message", [
    (["--name", "a", "--zone", "z"], "no command given; put it after --"),
    (["--name", "a", "--zone", "z", "--env", "1X=2", "--", "python"], "--env expects KEY=VALUE, got '1X=2'"),
    (["--name", "a", "--zone", "z", "--run-name", "a/b", "--", "python"], "--run-name may only contain"),
    (["--name", "a", "--", "python"], "--zone is required"),
])
def test_run_errors(fake, args, message):
  r = sh(fake, "run.sh", "--dry-run", *args, check=False)
  assert (r.returncode, r.stdout) == (2, "")
  assert message in r.stderr


def test_run_for_real_splits_the_gcloud_stream_into_worker_files(fake, tmp_path):
  fake["env"]["FAKE_GCLOUD_OUT_a"] = ("[worker 1] loss 2.0\n[worker 0] loss 2.5\n"
                                      "[worker 0] hhh-exit-code=0\n[worker 1] hhh-exit-code=0\n")
  r = sh(fake, "run.sh", "--name", "a", "--zone", "z", "--log-dir", str(tmp_path / "L"), "--",
         "python", "-m", "hhh.train")
  [call] = gcloud_calls(fake)
  assert call[:7] == ["compute", "tpus", "tpu-vm", "ssh", "a", "--zone=z", "--worker=all"]
  assert r.stdout.splitlines()[1:] == ["loss 2.5", "hhh-exit-code=0"]  # worker 0 only
  assert (tmp_path / "L" / "worker-1.log").read_text() == "loss 2.0\nhhh-exit-code=0\n"


def test_run_for_real_multislice_reports_the_failing_slice(fake, tmp_path):
  fake["env"]["FAKE_GCLOUD_OUT_ms_0"] = "[worker 0] ok\n[worker 0] hhh-exit-code=0\n"
  fake["env"]["FAKE_GCLOUD_OUT_ms_1"] = "[worker 0] boom\n[worker 0] hhh-exit-code=7\n"
  fake["env"]["FAKE_GCLOUD_RC_ms_1"] = "7"
  r = sh(fake, "run.sh", "--name", "ms", "--zone", "z", "--num-slices", "2", "--log-dir",
         str(tmp_path / "L"), "--", "python", "-m", "hhh.train", check=False)
  assert r.returncode == 1
  assert sorted(c[4] for c in gcloud_calls(fake)) == ["ms-0", "ms-1"]
  assert (tmp_path / "L" / "slice-0" / "worker-0.log").read_text() == "ok\nhhh-exit-code=0\n"
  assert (tmp_path / "L" / "slice-1" / "worker-0.log").read_text() == "boom\nhhh-exit-code=7\n"
  assert f"worker 0: exit code 7; log: {tmp_path}/L/slice-1/worker-0.log" in r.stdout
  assert f"slice 1 failed; logs in {tmp_path}/L/slice-1" in r.stderr
  assert "slice 0 failed" not in r.stderr


@pytest.fixture
def worker(fake, tmp_path):
  """A fake TPU worker: curl answers worker id 3, sudo is harmless, python echoes its argv."""
  wbin = tmp_path / "worker-bin"
  wbin.mkdir()
  _exe(wbin / "curl", "#!/bin/sh\necho 3\n")
  _exe(wbin / "sudo", """#!/bin/sh
case "$1" in
  lsof) [ -n "$FAKE_TPU_PID" ] && echo "$FAKE_TPU_PID" && echo "$FAKE_TPU_PID"; exit 1 ;;
  rm) exit 0 ;;
  *) exec "$@" ;;
esac
""")
  home = tmp_path / "hhh"
  (home / ".venv" / "bin").mkdir(parents=True)
  _exe(home / ".venv" / "bin" / "python", f"""#!{sys.executable}
import json, os, sys
print(json.dumps(sys.argv[1:]))
print("JAX_PLATFORMS=" + os.environ["JAX_PLATFORMS"], "HHH_DISTRIBUTED=" + os.environ["HHH_DISTRIBUTED"])
sys.exit(int(os.environ.get("FAKE_RC", "0")))
""")
  env = dict(fake["env"], PATH=f"{wbin}:{fake['env']['PATH']}")
  return {"env": env, "home": home}


def run_remote(remote, env):
  return subprocess.run(["bash", "-c", remote], capture_output=True, text=True, env=env, timeout=60)


def test_run_remote_script_end_to_end(fake, worker, tmp_path):
  [cmd] = dry(fake, "run.sh", "--name", "a", "--zone", "z", "--run-name", "r1",
              "--remote-dir", str(worker["home"]), "--", *TRAIN)
  r = run_remote(remote_of(cmd), worker["env"])
  assert r.returncode == 0, r.stderr
  lines = r.stdout.splitlines()
  assert lines[0] == "[worker 3] " + json.dumps(TRAIN[1:])
  assert lines[1] == "[worker 3] JAX_PLATFORMS=tpu HHH_DISTRIBUTED=on"
  assert lines[-1] == "[worker 3] hhh-exit-code=0"
  remote_log = worker["home"] / "logs" / "r1" / "worker-3.log"
  assert remote_log.read_text().splitlines()[0] == json.dumps(TRAIN[1:])
  assert (worker["home"] / "logs" / "latest").resolve() == remote_log.parent.resolve()
  # ... and the local side splits that stream into per-worker files.
  split = subprocess.run(["bash", str(LAUNCH / "split_logs.sh"), str(tmp_path / "local")],
                         input=r.stdout, capture_output=True, text=True)
  assert split.returncode == 0
  assert (tmp_path / "local" / "worker-3.log").read_text() == remote_log.read_text()


def test_run_remote_script_propagates_failure(fake, worker, tmp_path):
  [cmd] = dry(fake, "run.sh", "--name", "a", "--zone", "z", "--run-name", "r2", "--no-kill",
              "--remote-dir", str(worker["home"]), "--", "python", "-m", "hhh.train")
  r = run_remote(remote_of(cmd), dict(worker["env"], FAKE_RC="5"))
  assert r.returncode == 5
  assert r.stdout.splitlines()[-1] == "[worker 3] hhh-exit-code=5"
  split = subprocess.run(["bash", str(LAUNCH / "split_logs.sh"), str(tmp_path / "local")],
                         input=r.stdout, capture_output=True, text=True)
  assert split.returncode == 1
  assert f"worker 3: exit code 5; log: {tmp_path / 'local' / 'worker-3.log'}" in split.stdout


def test_run_detached_remote_script_writes_log_and_exit_code(fake, worker):
  [cmd] = dry(fake, "run.sh", "--name", "a", "--zone", "z", "--run-name", "d", "--no-kill", "--detach",
              "--remote-dir", str(worker["home"]), "--", *TRAIN)
  r = run_remote(remote_of(cmd), worker["env"])
  assert r.returncode == 0, r.stderr
  assert r.stdout.startswith("[worker 3] started pid ")
  log = worker["home"] / "logs" / "d" / "worker-3.log"
  for _ in range(100):
    if log.exists() and "hhh-exit-code" in log.read_text():
      break
    time.sleep(0.05)
  assert log.read_text().splitlines() == [json.dumps(TRAIN[1:]),
                                          "JAX_PLATFORMS=tpu HHH_DISTRIBUTED=on", "hhh-exit-code=0"]


# ---------------------------------------------------------------- split_logs.sh

def test_split_logs_demultiplexes_and_echoes_one_worker(tmp_path):
  stream = ("[worker 1] w1 first\n"
            "[worker 0] w0 first\n"
            "ssh: warning from gcloud\n"
            "[worker 10] w10 [bracket] line\n"
            "[worker 1] hhh-exit-code=0\n"
            "[worker 0] hhh-exit-code=0\n"
            "[worker 10] hhh-exit-code=0\n")
  r = subprocess.run(["bash", str(LAUNCH / "split_logs.sh"), str(tmp_path / "L")], input=stream,
                     capture_output=True, text=True)
  assert r.returncode == 0
  assert r.stdout == "w0 first\nssh: warning from gcloud\nhhh-exit-code=0\n"
  assert (tmp_path / "L" / "worker-1.log").read_text() == "w1 first\nhhh-exit-code=0\n"
  assert (tmp_path / "L" / "worker-10.log").read_text() == "w10 [bracket] line\nhhh-exit-code=0\n"


def test_split_logs_reports_silent_worker(tmp_path):
  r = subprocess.run(["bash", str(LAUNCH / "split_logs.sh"), str(tmp_path), "-1"],
                     input="[worker 2] started\n[worker 0] hhh-exit-code=0\n", capture_output=True, text=True)
  assert r.returncode == 1
  assert r.stdout == (f"worker 2: no exit code yet (still running, or connection lost); "
                      f"log: {tmp_path}/worker-2.log\n")


# ---------------------------------------------------------------- logs.sh / kill.sh / delete.sh

def test_logs_follow_and_no_follow(fake):
  [cmd] = dry(fake, "logs.sh", "--name", "a", "--zone", "z")
  assert cmd[:8] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "a", "--zone=z", "--worker=all"]
  assert "tail -n +1 -F ~/hhh/logs/latest/worker-$W.log | sed -u" in remote_of(cmd)
  assert cmd[-4:] == ["bash", str(LAUNCH / "split_logs.sh"), str(ROOT / "logs" / "a"), "0"]
  [cmd] = dry(fake, "logs.sh", "--name", "a", "--zone", "z", "--no-follow", "--run-name", "r7")
  assert "; cat ~/hhh/logs/r7/worker-$W.log | sed -u" in remote_of(cmd)


def test_logs_reads_what_run_wrote(fake, worker, tmp_path):
  [cmd] = dry(fake, "run.sh", "--name", "a", "--zone", "z", "--run-name", "r9", "--no-kill",
              "--remote-dir", str(worker["home"]), "--", "python", "x y")
  assert run_remote(remote_of(cmd), worker["env"]).returncode == 0
  [cmd] = dry(fake, "logs.sh", "--name", "a", "--zone", "z", "--no-follow",
              "--remote-dir", str(worker["home"]))
  r = run_remote(remote_of(cmd), worker["env"])
  assert r.stdout.splitlines()[0] == '[worker 3] ["x y"]'
  assert r.stdout.splitlines()[-1] == "[worker 3] hhh-exit-code=0"


def test_logs_multislice(fake):
  cmds = dry(fake, "logs.sh", "--name", "ms", "--zone", "z", "--num-slices", "3", "--log-dir", "/L")
  assert [c[5] for c in cmds[:3]] == ["ms-0", "ms-1", "ms-2"]
  assert [c[-3] for c in cmds[:3]] == ["/L/slice-0", "/L/slice-1", "/L/slice-2"]
  assert cmds[3] == ["wait"]


def test_kill(fake):
  [cmd] = dry(fake, "kill.sh", "--name", "a", "--zone", "z", "--project", "p")
  assert cmd[:9] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "a", "--zone=z", "--project=p",
                     "--worker=all"]
  assert remote_of(cmd).startswith("pids=$( (sudo lsof -t -w /dev/accel* /dev/vfio/* 2>/dev/null || true)")
  cmds = dry(fake, "kill.sh", "--name", "ms", "--zone", "z", "--worker", "2", "--num-slices", "2")
  assert [(c[5], c[7]) for c in cmds] == [("ms-0", "--worker=2"), ("ms-1", "--worker=2")]
  r = sh(fake, "kill.sh", "--dry-run", "--name", "a", "--zone", "z", "--worker", "x", check=False)
  assert r.returncode == 2 and "--worker must be 'all' or a worker index, got 'x'" in r.stderr


def test_kill_snippet_kills_the_process_holding_the_tpu(fake, worker):
  [cmd] = dry(fake, "kill.sh", "--name", "a", "--zone", "z")
  holder = subprocess.Popen(["sleep", "60"])
  # Reap it as soon as it dies: a zombie still "exists" and the snippet would wait for it.
  reaper = threading.Thread(target=holder.wait, daemon=True)
  reaper.start()
  try:
    r = run_remote(remote_of(cmd), dict(worker["env"], FAKE_TPU_PID=str(holder.pid)))
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"killing stale TPU processes: {holder.pid}\n"  # de-duplicated
    reaper.join(timeout=5)
    assert holder.returncode == -signal.SIGKILL
  finally:
    holder.kill()
  r = run_remote(remote_of(cmd), dict(worker["env"], FAKE_TPU_PID=""))
  assert (r.returncode, r.stdout) == (0, "")


@pytest.mark.parametrize("args, expected", [
    ([], ["tpu-vm", "delete", "a", "--zone=z"]),
    (["--yes"], ["tpu-vm", "delete", "a", "--zone=z", "--quiet"]),
    (["--queued", "--async"], ["queued-resources", "delete", "a", "--zone=z", "--force", "--async"]),
    (["--num-slices", "2", "--yes"], ["queued-resources", "delete", "a", "--zone=z", "--force", "--quiet"]),
])
def test_delete(fake, args, expected):
  [cmd] = dry(fake, "delete.sh", "--name", "a", "--zone", "z", *args)
  assert cmd == ["gcloud", "compute", "tpus", *expected]


# ---------------------------------------------------------------- local.sh

def test_local_dry_run_multi_process(fake):
  cmds = dry(fake, "local.sh", "--num-processes", "2", "--devices-per-process", "4", "--run-name", "r",
             "--log-dir", "/L", "--env", "A=1 2", "--", "python", "-m", "hhh.train", NASTY)
  py = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv/bin/python").exists() else "python3"
  assert cmds[0] == ["cd", str(ROOT)] and cmds[1] == ["mkdir", "-p", "/L"]
  common = ["env", "JAX_PLATFORMS=cpu", "PYTHONUNBUFFERED=1", "HHH_RUN_NAME=r",
            "XLA_FLAGS=--xla_force_host_platform_device_count=4", "A=1 2",
            "JAX_COORDINATOR_ADDRESS=localhost:12355", "JAX_NUM_PROCESSES=2"]
  assert cmds[2] == [*common, "JAX_PROCESS_ID=0", py, "-m", "hhh.train", NASTY,
                     ">", ">(", "tee", "/L/worker-0.log", ")", "2", ">&", "1", "&"]
  assert cmds[3] == [*common, "JAX_PROCESS_ID=1", py, "-m", "hhh.train", NASTY,
                     ">", "/L/worker-1.log", "2", ">&", "1", "&"]
  assert cmds[4] == ["wait"]
  assert not Path("/L").exists()


def test_local_keeps_caller_xla_flags_but_replaces_device_count(fake):
  fake["env"]["XLA_FLAGS"] = "--xla_dump_to=/d --xla_force_host_platform_device_count=8"
  cmds = dry(fake, "local.sh", "--devices-per-process", "2", "--", "x")
  assert "XLA_FLAGS=--xla_dump_to=/d --xla_force_host_platform_device_count=2" in cmds[2]


def test_local_dry_run_single_process(fake):
  cmds = dry(fake, "local.sh", "--run-name", "r", "--log-dir", "/L", "--platform", "", "--", "echo", "hi")
  assert cmds[2] == ["env", "JAX_PLATFORMS=", "PYTHONUNBUFFERED=1", "HHH_RUN_NAME=r", "HHH_DISTRIBUTED=off",
                     "echo", "hi", "2", ">&", "1", "|", "tee", "/L/worker-0.log"]


@pytest.mark.parametrize("args, message", [
    ([], "no command given"),
    (["--num-processes", "0", "--", "x"], "--num-processes must be a positive integer, got '0'"),
    (["--devices-per-process", "x", "--", "x"], "--devices-per-process must be a positive integer"),
    (["--name", "a", "--", "x"], "unknown argument: --name"),
])
def test_local_errors(fake, args, message):
  r = sh(fake, "local.sh", "--dry-run", *args, check=False)
  assert (r.returncode, r.stdout) == (2, "")
  assert message in r.stderr


def test_local_two_processes_form_one_jax_system(fake, tmp_path):
  code = ("from hhh.core import distributed as d; i = d.maybe_initialize(); "
          "print('INFO', i.process_index, i.process_count, i.local_device_count, i.device_count, "
          "i.initialized, d.is_primary())")
  port = str(20000 + os.getpid() % 20000)
  r = sh(fake, "local.sh", "--num-processes", "2", "--devices-per-process", "2", "--port", port,
         "--log-dir", str(tmp_path / "L"), "--", "python", "-c", code)
  assert "INFO 0 2 2 4 True True" in r.stdout
  assert "INFO 0 2 2 4 True True" in (tmp_path / "L" / "worker-0.log").read_text()
  assert "INFO 1 2 2 4 True False" in (tmp_path / "L" / "worker-1.log").read_text()


def test_local_fails_fast_when_one_process_dies(fake, tmp_path):
  code = ("import os, sys, time; i = int(os.environ['JAX_PROCESS_ID']); "
          "sys.exit(3) if i == 1 else time.sleep(60)")
  start = time.monotonic()
  r = sh(fake, "local.sh", "--num-processes", "3", "--log-dir", str(tmp_path / "L"),
         "--", "python", "-c", code, check=False)
  assert r.returncode == 1
  assert time.monotonic() - start < 20
  assert f"process 1 exited with code 3; log: {tmp_path}/L/worker-1.log; stopping the others" in r.stderr
