"""Checksums of a saved checkpoint: a damaged checkpoint is never restored as good (docs/reliability.md).

Orbax reads most bit flips in an array file back as finite but different numbers, so a checkpoint can restore
"successfully" with the wrong values. Once orbax has finished a step (its folder renamed from the temporary name),
`write` records the SHA-256 and size of every file in it in `STEP/hhh_checksums.json` (written to a temporary file
and renamed, so it is whole or absent). `verify` recomputes them before a restore: a changed, missing or added file
raises CorruptFilesError naming it, and the caller treats the checkpoint as damaged (the trainer moves it aside and
resumes from the previous one; evaluation, sampling and export use the previous one).

A step without the file (written by an older hhh, or cut by a kill between orbax's rename and the write) is restored
unverified, with a warning from the caller.
"""

from __future__ import annotations

import hashlib
import json
import os

FILENAME = "hhh_checksums.json"
_CHUNK = 1 << 22


class CorruptFilesError(ValueError):
  """A checkpoint's files differ from the checksums recorded when it was saved."""


def _files(step_dir: str) -> list[str]:
  out = []
  for d, _, names in os.walk(step_dir):
    for n in names:
      rel = os.path.relpath(os.path.join(d, n), step_dir)
      if rel != FILENAME and not n.startswith(FILENAME + ".tmp"):
        out.append(rel)
  return sorted(out)


def _digest(path: str) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    while chunk := f.read(_CHUNK):
      h.update(chunk)
  return h.hexdigest()


def compute(step_dir: str) -> dict:
  """{relative path: [size, sha256]} of every file under `step_dir` (but the checksum file)."""
  return {rel: [os.path.getsize(os.path.join(step_dir, rel)), _digest(os.path.join(step_dir, rel))]
          for rel in _files(step_dir)}


def has(step_dir: str) -> bool:
  return os.path.isfile(os.path.join(step_dir, FILENAME))


def write(step_dir: str) -> None:
  """Records the checksums of the finished checkpoint `step_dir` atomically."""
  path = os.path.join(step_dir, FILENAME)
  tmp = f"{path}.tmp.{os.getpid()}"
  with open(tmp, "w") as f:
    json.dump({"algorithm": "sha256", "files": compute(step_dir)}, f, sort_keys=True)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


def verify(step_dir: str) -> bool:
  """True when `step_dir` matches its recorded checksums, False when it has none; CorruptFilesError naming the first
  file that differs (or is missing, or was added) otherwise."""
  path = os.path.join(step_dir, FILENAME)
  if not os.path.isfile(path):
    return False
  try:
    with open(path) as f:
      want = json.load(f)["files"]
    if not isinstance(want, dict):
      raise ValueError("no file table")
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise CorruptFilesError(f"{FILENAME} cannot be read ({e})") from None
  have = _files(step_dir)
  for rel in sorted(set(want) - set(have)):
    raise CorruptFilesError(f"{rel} is missing")
  for rel in have:
    if rel not in want:
      raise CorruptFilesError(f"{rel} was not part of the saved checkpoint")
    size, digest = want[rel]
    full = os.path.join(step_dir, rel)
    if os.path.getsize(full) != size:
      raise CorruptFilesError(f"{rel} has {os.path.getsize(full)} bytes, {size} when saved")
    if _digest(full) != digest:
      raise CorruptFilesError(f"{rel} differs from its checksum (damaged on disk)")
  return True
