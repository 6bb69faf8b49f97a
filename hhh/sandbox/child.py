"""The sandbox's child: runs ONE untrusted program and reports its verdict (hhh.sandbox.execute starts it).

This file is executed by a fresh `python -I -c <this source>` child of the evaluator, never imported by hhh: it uses
the standard library only. It reads a JSON spec from argv[1]; the verdict goes to the descriptor spec["verdict_fd"]
as one JSON object. Order:

1. Read the program; set up isolation (`spec["isolation"]`):
   namespaces  new user, mount, network, PID, IPC and UTS namespaces. Every mount is remounted read-only except
               the private working directory; the network namespace has no interfaces up (no network, no
               localhost); the program runs as PID 1 of its own PID namespace with a fresh /proc, so no process
               outside is visible or signalable, and when it exits the kernel kills everything it started.
   process     no namespaces (where the OS refuses them): the layers below only.
2. Resource limits: address space, CPU seconds, processes, file size (which bounds stdout/stderr too), no core dumps.
3. Close stdin; the seccomp filter (`spec["seccomp"]`, see `seccomp`); the guard (`spec["guard"]`): a Python audit
   hook that refuses sockets, process creation, signals, ctypes, writes/deletes outside the working directory and
   other processes' /proc entries. A refused action is a violation: the program is reported as crashed even if it
   caught the exception.
4. Run the program; the verdict: passed (it ran to the end) / failed (an exception: the assertion or error line) /
   crashed (MemoryError, SystemExit before the end, a guard violation). A child that dies without a verdict (a
   signal, a limit, os._exit) is classified by the parent from its exit status.
"""
import ctypes
import errno
import json
import os
import resource
import signal
import sys
import traceback

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC, MS_PRIVATE, MS_RELATIME = 1024, 2048, 4096, 16384, 1 << 18, 1 << 21
KEEP_FLAGS = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC, "noatime": MS_NOATIME,
              "nodiratime": MS_NODIRATIME, "relatime": MS_RELATIME}
PR_SET_PDEATHSIG, PR_SET_DUMPABLE = 1, 4
_libc = ctypes.CDLL(None, use_errno=True)


def _check(ret, what):
  if ret != 0:
    err = ctypes.get_errno()
    raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(src, target, fstype, flags):
  enc = lambda s: None if s is None else s.encode()  # noqa: E731
  _check(_libc.mount(enc(src), enc(target), enc(fstype), ctypes.c_ulong(flags), None), f"mount {target}")


def _write(path, text):
  with open(path, "w") as f:
    f.write(text)


def _unescape(field):
  """mountinfo's octal escapes (\\040 for a space) decoded."""
  out, i = "", 0
  while i < len(field):
    if field[i] == "\\" and field[i + 1:i + 4].isdigit():
      out, i = out + chr(int(field[i + 1:i + 4], 8)), i + 4
    else:
      out, i = out + field[i], i + 1
  return out


def _mounts():
  out = []
  with open("/proc/self/mountinfo") as f:
    for line in f:
      parts = line.split()
      point = _unescape(parts[4])
      out.append((point, parts[5].split(",")))
  return out


def namespaces(workdir):
  """Enters fresh namespaces with everything but `workdir` read-only; returns in the child that runs the program
  (PID 1 of its namespace). The parent of that child waits for it and exits with its status."""
  uid, gid = os.geteuid(), os.getegid()
  _check(_libc.unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS),
         "unshare")
  _write("/proc/self/setgroups", "deny")
  _write("/proc/self/uid_map", f"0 {uid} 1")
  _write("/proc/self/gid_map", f"0 {gid} 1")
  _mount(None, "/", None, MS_REC | MS_PRIVATE)
  _mount(workdir, workdir, None, MS_BIND | MS_REC)
  failed = []
  for point, opts in _mounts():
    if point == workdir or point.startswith(workdir + "/") or "ro" in opts:
      continue
    flags = MS_REMOUNT | MS_BIND | MS_RDONLY
    for o in opts:
      flags |= KEEP_FLAGS.get(o, 0)
    try:
      _mount(None, point, None, flags)
    except OSError as e:
      failed.append(f"{point} ({e.strerror})")
  if failed:
    raise OSError(f"could not make read-only: {', '.join(failed[:5])}")
  pid = os.fork()
  if pid:  # outside the new PID namespace: wait, then exit as the program did
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _, status = os.waitpid(pid, 0)
    os._exit(128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status))
  _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PDEATHSIG)")
  try:
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
  except OSError:  # a /proc the kernel will not mount here: hide it rather than show the host's processes
    _mount("tmpfs", "/proc", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY)


# seccomp: a kernel filter the program cannot remove (no_new_privs, then SECCOMP_MODE_FILTER). Refused with EPERM:
# process creation (clone without CLONE_THREAD, fork, vfork, exec), sockets, signals to other processes, ptrace,
# other processes' memory, new namespaces and mounts. clone3 gets ENOSYS so that threads fall back to clone.
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
CLONE_THREAD = 0x00010000
ARCHES = {  # machine -> (AUDIT_ARCH, clone, clone3, [refused syscalls])
    "x86_64": (0xC000003E, 56, 435, [57, 58, 59, 322, 41, 53, 42, 62, 200, 234, 129, 297, 424, 101, 310, 311, 272,
                                     308, 165]),
    "aarch64": (0xC00000B7, 220, 435, [221, 281, 198, 199, 203, 129, 130, 131, 138, 240, 424, 117, 270, 271, 97, 268,
                                       40]),
}


class _Filter(ctypes.Structure):
  _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint)]


class _Prog(ctypes.Structure):
  _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_Filter))]


def seccomp():
  arch, clone, clone3, refused = ARCHES[os.uname().machine]
  ld, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06
  allow, kill, eperm, enosys = 0x7FFF0000, 0x80000000, 0x00050000 | errno.EPERM, 0x00050000 | errno.ENOSYS
  n = len(refused)
  # 0 ld arch; 1 jeq arch; 2 ret kill; 3 ld nr; 4 jge x32 bit; 5 jeq clone3; 6 jeq clone; 7 ld args[0];
  # 8 jset CLONE_THREAD; 9 ld nr (6 jumps here when not clone); 10.. jeq each refused; ALLOW, EPERM, ENOSYS
  a = 10 + n  # index of ALLOW
  prog = [(ld, 0, 0, 4), (jeq, 1, 0, arch), (ret, 0, 0, kill), (ld, 0, 0, 0),
          (jge, a + 1 - 5, 0, 0x40000000), (jeq, a + 2 - 6, 0, clone3), (jeq, 0, 2, clone),
          (ld, 0, 0, 16), (jset, a - 9, a + 1 - 9, CLONE_THREAD), (ld, 0, 0, 0)]
  prog += [(jeq, a + 1 - (10 + i) - 1, 0, nr) for i, nr in enumerate(refused)]
  prog += [(ret, 0, 0, allow), (ret, 0, 0, eperm), (ret, 0, 0, enosys)]
  arr = (_Filter * len(prog))(*[_Filter(*ins) for ins in prog])
  _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")
  _check(_libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(_Prog(len(prog), arr)), 0, 0), "seccomp")


def limits(spec):
  lim = spec["limits"]
  mb = 1 << 20
  for res, value in ((resource.RLIMIT_AS, lim["memory_mb"] * mb), (resource.RLIMIT_CPU, lim["cpu_s"]),
                     (resource.RLIMIT_NPROC, lim["processes"]), (resource.RLIMIT_FSIZE, lim["file_mb"] * mb),
                     (resource.RLIMIT_CORE, 0), (resource.RLIMIT_NOFILE, lim["open_files"])):
    resource.setrlimit(res, (value, value))


# ----------------------------------------------------------------------------------------------- the guard

_SPAWN = ("os.fork", "os.forkpty", "os.posix_spawn", "os.spawn", "os.exec", "os.system", "subprocess.Popen",
          "os.startfile", "pty.spawn")
_SIGNAL = ("os.kill", "os.killpg", "signal.pthread_kill")
_PATHS = {"os.remove": 1, "os.rename": 2, "os.rmdir": 1, "os.mkdir": 1, "os.chmod": 1, "os.chown": 1, "os.link": 2,
          "os.symlink": 2, "os.truncate": 1, "os.utime": 1, "shutil.rmtree": 1, "os.chflags": 1, "os.lchown": 1}
_WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def guard(workdir, violations):
  """An audit hook refusing what a program under test has no business doing (see the module docstring)."""
  real = os.path.realpath
  own = {f"/proc/{os.getpid()}", "/proc/self", "/proc/thread-self"}

  def inside(path):
    if isinstance(path, int):
      return True
    p = real(os.fsdecode(path))
    return p == workdir or p.startswith(workdir + os.sep)

  def refuse(what):
    violations.append(what)
    raise PermissionError(f"hhh sandbox: {what} is not allowed")

  def hook(event, args):
    if event == "socket.__new__":
      refuse("network (socket creation)")
    elif event.startswith(_SPAWN):
      refuse(f"process creation ({event})")
    elif event in _SIGNAL:
      refuse(f"sending a signal ({event})")
    elif event.startswith("ctypes."):
      refuse(f"ctypes ({event})")
    elif event == "open":
      path, mode, flags = args
      if isinstance(path, int):
        return
      p = real(os.fsdecode(path))
      if ((flags or 0) & _WRITE or (mode and any(c in str(mode) for c in "wax+"))) and not inside(path):
        refuse(f"writing {p}")
      if p.startswith("/proc/") and p.split("/")[2].isdigit() and "/".join(p.split("/")[:3]) not in own:
        refuse(f"reading {p}")
    elif event in _PATHS:
      for a in args[:_PATHS[event]]:
        if a is not None and not inside(a):
          refuse(f"{event} of {real(os.fsdecode(a))}")

  sys.addaudithook(hook)


# ----------------------------------------------------------------------------------------------- main


def _last_line(e):
  lines = traceback.format_exception_only(type(e), e)
  return (lines[-1].strip() if lines else type(e).__name__)[:500]


def main():
  spec = json.loads(sys.argv[1])
  verdict = os.fdopen(spec["verdict_fd"], "w")
  with open(spec["program"], encoding="utf-8") as f:
    program = f.read()
  workdir = os.path.realpath(spec["workdir"])
  os.chdir(workdir)
  if spec["isolation"] == "namespaces":
    namespaces(workdir)
    os.chdir(workdir)  # the bind mount over it, not the read-only directory beneath
  limits(spec)
  os.close(0)
  sys.stdin = None
  if spec["seccomp"]:
    seccomp()
  violations = []
  if spec["guard"]:
    guard(workdir, violations)
  try:
    code = compile(program, "program.py", "exec")
    exec(code, {"__name__": "__main__", "__builtins__": __builtins__})  # pylint: disable=exec-used
    out = {"status": "passed"}
  except SyntaxError as e:
    out = {"status": "failed", "detail": _last_line(e)}
  except MemoryError:
    out = {"status": "crashed", "detail": f"memory limit ({spec['limits']['memory_mb']} MB address space)"}
  except SystemExit as e:
    out = {"status": "crashed", "detail": f"exit({e.code!r}) before the end of the program"}
  except OSError as e:
    if e.errno == errno.EFBIG:  # Python ignores SIGXFSZ: the write fails instead
      out = {"status": "crashed", "detail": f"file size limit ({spec['limits']['file_mb']} MB): its output or a "
                                            "file it wrote was too large"}
    else:
      out = {"status": "failed", "detail": _last_line(e)}
  except AssertionError as e:
    tb = traceback.extract_tb(e.__traceback__)
    where = next((fr for fr in reversed(tb) if fr.filename == "program.py"), None)
    line = program.splitlines()[where.lineno - 1].strip() if where and where.lineno else ""
    out = {"status": "failed", "detail": (f"AssertionError: {line}" if line else _last_line(e))[:500]}
  except BaseException as e:  # pylint: disable=broad-except
    out = {"status": "failed", "detail": _last_line(e)}
  if violations:
    out = {"status": "crashed", "detail": f"blocked: {violations[0]}" +
           (f" (and {len(violations) - 1} more)" if len(violations) > 1 else "")}
  verdict.write(json.dumps(out))
  verdict.flush()
  sys.stdout.flush()
  sys.stderr.flush()
  os._exit(0)


if __name__ == "__main__":
  main()
