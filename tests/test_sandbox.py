"""The sandbox holds: each adversarial program is contained and counted, by each layer that claims to contain it
(docs/sandbox.md's table), and nothing outside the program's own directory is touched."""
import json
import os
import socket
import subprocess
import sys
import threading

import pytest

from hhh import sandbox

if not sys.platform.startswith("linux"):
  pytest.skip("the sandbox's isolation layers are Linux's", allow_module_level=True)

FOUND = sandbox.probe()
LAYERS = {  # each layer alone (resource limits are always on), and all of them (the default)
    "default": dict(),
    "namespaces": dict(isolation="namespaces", seccomp=False, guard=False),
    "seccomp": dict(isolation="process", seccomp=True, guard=False),
    "guard": dict(isolation="process", seccomp=False, guard=True),
}
LIMITS = sandbox.Limits(timeout_s=2.0, memory_mb=512, file_mb=4, output_kb=8)


def _sandbox(layer, tmp_path, **kw):
  need = [x for x in ("namespaces", "seccomp") if LAYERS[layer].get(x if x != "namespaces" else "isolation") in
          (True, "namespaces") and not FOUND[x]]
  if need:
    pytest.skip(f"this machine refuses {need}: {FOUND['why']}")
  d = tmp_path / "sandboxes"
  d.mkdir(exist_ok=True)
  return sandbox.Sandbox(kw.pop("limits", LIMITS), tmpdir=str(d), **LAYERS[layer], **kw)


def _left_behind(sb) -> list:
  """Processes still running whose command line names this sandbox's directory, and files left in it."""
  procs = []
  for pid in os.listdir("/proc"):
    try:
      with open(f"/proc/{pid}/cmdline", "rb") as f:
        if sb.tmpdir.encode() in f.read():
          procs.append(pid)
    except OSError:
      pass
  return procs + os.listdir(sb.tmpdir)


# ----------------------------------------------------------------------------------------------- the attacks

FORK_BOMB = "import os\nwhile True:\n  try:\n    os.fork()\n  except OSError:\n    pass\n"
FILES = """import os, shutil
errors = []
for attack in (lambda: open({d!r} + '/new.txt', 'w').write('x'), lambda: open({d!r} + '/victim.txt', 'a').write('x'),
               lambda: os.remove({d!r} + '/victim.txt'), lambda: os.rename({d!r} + '/victim.txt', {d!r} + '/moved'),
               lambda: shutil.rmtree({d!r})):
  try:
    attack()
  except Exception as e:
    errors.append(repr(e))
assert not errors, errors
"""
ENV = """import os
leaks = [k for k in os.environ if 'HHH_SECRET' in k]
for pid in [p for p in os.listdir('/proc') if p.isdigit()] + [str({parent})]:
  try:
    with open('/proc/' + pid + '/environ', 'rb') as f:
      if b'HHH_SECRET' in f.read():
        leaks.append(pid)
  except Exception:
    pass
print('LEAKS', leaks, {token!r} if leaks else '')
assert not leaks
"""
SOCKET = "import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=1)\ns.sendall(b'LEAK')\n"
KILL = """import os, signal
targets = [{pid}, os.getppid()]
pid = os.getpid()
while pid > 1:  # every ancestor this process can see
  with open(f'/proc/{{pid}}/stat') as f:
    pid = int(f.read().rsplit(')', 1)[1].split()[1])
  targets.append(pid)
for t in targets:
  if t > 0:
    os.kill(t, signal.SIGKILL)
"""


@pytest.mark.parametrize("layer", ["default", "namespaces", "seccomp", "guard"])
def test_loop_memory_output_are_bounded_by_every_layer(layer, tmp_path):
  sb = _sandbox(layer, tmp_path)
  loop, memory, output = sb.run_many(["while True:\n  pass\n", "x = bytearray(50 * 2**30)\n",
                                      "import sys\nsys.stdout.write('x' * (100 * 2**20))\n"])
  assert (loop.status, loop.detail) == ("timed_out", "wall-clock limit (2 s)")
  assert (memory.status, memory.detail) == ("crashed", "memory limit (512 MB address space)")
  assert output.status == "crashed" and output.detail.startswith("file size limit (4 MB)")
  assert len(output.output) <= 8 * 1024
  assert _left_behind(sb) == []


@pytest.mark.parametrize("layer", ["default", "seccomp", "guard"])
def test_fork_bomb_is_contained(layer, tmp_path):
  sb = _sandbox(layer, tmp_path)
  r = sb.run(FORK_BOMB)
  assert r.status == "timed_out"
  assert _left_behind(sb) == []


@pytest.mark.parametrize("layer", ["default", "namespaces", "guard"])
def test_files_outside_its_directory_are_untouched(layer, tmp_path):
  outside = tmp_path / "outside"
  outside.mkdir()
  (outside / "victim.txt").write_text("keep")
  os.chmod(outside, 0o777)  # writable by anyone: only the sandbox stands in the way
  os.chmod(outside / "victim.txt", 0o666)
  sb = _sandbox(layer, tmp_path)
  r = sb.run(FILES.format(d=str(outside)))
  assert r.status in ("failed", "crashed"), r
  assert sorted(os.listdir(outside)) == ["victim.txt"] and (outside / "victim.txt").read_text() == "keep"
  inside = sb.run("open('mine.txt', 'w').write('ok')\nassert open('mine.txt').read() == 'ok'\n")
  assert inside.status == "passed", inside
  assert _left_behind(sb) == []


@pytest.mark.parametrize("layer", ["default", "namespaces", "guard"])
def test_parent_environment_is_not_readable(layer, tmp_path):
  """The evaluator runs in its own process whose initial environment holds a secret (a variable set later would
  not show in /proc/PID/environ, and the test could not fail)."""
  _sandbox(layer, tmp_path)  # skips where the layer is refused
  token = "hhh-secret-7f3a"
  program = ENV.format(parent="os.getppid()", token=token)
  runner = ("import json, sys\nfrom hhh import sandbox\nsb = sandbox.Sandbox(sandbox.Limits(timeout_s=5), "
            f"**{LAYERS[layer]!r})\nr = sb.run(sys.stdin.read())\nprint(json.dumps(r.to_json()))\n")
  env = {**os.environ, "HHH_SECRET": token}
  out = subprocess.run([sys.executable, "-c", runner], input=program, env=env,
                       capture_output=True, text=True, timeout=60, check=True)
  r = json.loads(out.stdout.strip().splitlines()[-1])
  assert token not in json.dumps(r)
  assert r["status"] in ("passed", "crashed"), r  # passed: nothing leaked; crashed: the guard refused the reads


@pytest.mark.parametrize("layer", ["default", "namespaces", "seccomp", "guard"])
def test_no_network_even_to_localhost(layer, tmp_path):
  sb = _sandbox(layer, tmp_path)
  listener = socket.socket()
  listener.bind(("127.0.0.1", 0))
  listener.listen(1)
  listener.settimeout(0.5)
  r = sb.run(SOCKET.format(port=listener.getsockname()[1]))
  with pytest.raises(socket.timeout):
    listener.accept()
  listener.close()
  assert r.status in ("failed", "crashed"), r


@pytest.mark.parametrize("layer", ["default", "namespaces", "seccomp", "guard"])
def test_killing_the_parent_fails(layer, tmp_path):
  sb = _sandbox(layer, tmp_path)
  r = sb.run(KILL.format(pid=os.getpid()))
  assert r.status in ("failed", "crashed"), r  # and this test process is still here to say so
  assert _left_behind(sb) == []


def test_verdicts_and_details(tmp_path):
  sb = _sandbox("default", tmp_path)
  ok, wrong, err, syntax, early, forged = sb.run_many([
      "def f(x):\n  return x + 1\nassert f(1) == 2\n", "def f(x):\n  return x\nassert f(1) == 2\n",
      "import math\nmath.sqrt(-1)\n", "def f(:\n", "import sys\nsys.exit(0)\nassert False\n",
      "import os\nos._exit(0)\n"])
  assert (ok.status, wrong.status, err.status, syntax.status) == ("passed", "failed", "failed", "failed")
  assert wrong.detail == "AssertionError: assert f(1) == 2"
  assert err.detail == "ValueError: math domain error"
  assert syntax.detail.startswith("SyntaxError")
  assert (early.status, early.detail) == ("crashed", "exit(0) before the end of the program")
  assert forged.status == "crashed" and "no verdict" in forged.detail
  assert sandbox.counts([ok, wrong, err, syntax, early, forged]) == {"passed": 1, "failed": 3, "timed_out": 0,
                                                                    "crashed": 2}
  assert sb.describe()["isolation"] == ("namespaces" if FOUND["namespaces"] else "process")


def test_a_batch_of_164_misbehaving_programs(tmp_path):
  """The evaluator survives 164 programs that all misbehave at once, each counted, nothing outside touched."""
  outside = tmp_path / "outside"
  outside.mkdir()
  (outside / "victim.txt").write_text("keep")
  os.chmod(outside, 0o777)
  listener = socket.socket()
  listener.bind(("127.0.0.1", 0))
  listener.listen(64)
  listener.settimeout(0.2)
  attacks = {"loop": "while True:\n  pass\n", "fork": FORK_BOMB, "memory": "x = bytearray(50 * 2**30)\n",
             "files": FILES.format(d=str(outside)), "socket": SOCKET.format(port=listener.getsockname()[1]),
             "kill": KILL.format(pid=os.getpid()), "output": "print('x' * (100 * 2**20))\n",
             "env": ENV.format(parent=os.getpid(), token="")}
  kinds = [list(attacks)[i % len(attacks)] for i in range(164)]
  sb = _sandbox("default", tmp_path, limits=sandbox.Limits(timeout_s=0.5, memory_mb=512, file_mb=4, output_kb=8))
  results = sb.run_many([attacks[k] for k in kinds])
  assert len(results) == 164 and all(r.status in sandbox.STATUSES for r in results)
  passed = {k for k, r in zip(kinds, results) if r.status == "passed"}
  assert passed <= {"env"}  # reading the environment passes only when it finds nothing
  assert all("LEAKS []" in r.output or r.status != "passed" for k, r in zip(kinds, results) if k == "env")
  with pytest.raises(socket.timeout):
    listener.accept()
  listener.close()
  assert os.listdir(outside) == ["victim.txt"] and (outside / "victim.txt").read_text() == "keep"
  assert _left_behind(sb) == []
  assert sandbox.counts(results)["timed_out"] >= 2 * 164 // 8  # the loops and the fork bombs


def test_limits_are_checked():
  with pytest.raises(ValueError, match="timeout_s must be > 0"):
    sandbox.Limits(timeout_s=0)
  with pytest.raises(ValueError, match="isolation must be one of"):
    sandbox.Sandbox(isolation="chroot")
