"""Candidate pools for code-correctness ranking when the model is too small to write code: each HumanEval problem's
canonical solution plus deterministic mutants of it (every edit is inside the solution, never the prompt):

  flipped_comparison  the first comparison operator negated (< becomes >=, == becomes !=, ...)
  off_by_one          the first integer literal plus one
  swapped_return      the values of the first two different return statements swapped; with one return, it
                      returns None
  dropped_statement   the first statement that is neither a block's last nor a return, deleted

A mutant that does not compile or equals another candidate is left out. Labels are never assumed: the code suite
executes every candidate in the sandbox, so a mutant that still passes the tests counts as correct, and the pool's
correct fraction is the chance line of ranking it.
"""
from __future__ import annotations

import ast
import io
import tokenize
from typing import List, Optional, Tuple

KINDS = ("canonical", "flipped_comparison", "off_by_one", "swapped_return", "dropped_statement")
FLIP = {"<": ">=", ">": "<=", "<=": ">", ">=": "<", "==": "!=", "!=": "=="}


def _offsets(text: str) -> List[int]:
  starts, pos = [0], 0
  for line in text.splitlines(keepends=True):
    pos += len(line)
    starts.append(pos)
  return starts


def _tokens(full: str, start: int):
  """(type, string, start offset, end offset) of the tokens of `full` that begin at or after `start`."""
  lines = _offsets(full)
  out = []
  try:
    for t in tokenize.generate_tokens(io.StringIO(full).readline):
      a, b = lines[t.start[0] - 1] + t.start[1], lines[t.end[0] - 1] + t.end[1]
      if a >= start:
        out.append((t.type, t.string, a, b))
  except (tokenize.TokenError, IndentationError, SyntaxError):
    return []
  return out


def _replace(full: str, a: int, b: int, new: str) -> str:
  return full[:a] + new + full[b:]


def flipped_comparison(full: str, start: int) -> Optional[str]:
  for typ, s, a, b in _tokens(full, start):
    if typ == tokenize.OP and s in FLIP:
      return _replace(full, a, b, FLIP[s])
  return None


def off_by_one(full: str, start: int) -> Optional[str]:
  for typ, s, a, b in _tokens(full, start):
    if typ == tokenize.NUMBER and s.isdigit():
      return _replace(full, a, b, str(int(s) + 1))
  return None


def swapped_return(full: str, start: int) -> Optional[str]:
  toks = _tokens(full, start)
  spans = []  # (expression start, end) of each `return EXPR`
  for i, (typ, s, _, b) in enumerate(toks):
    if typ == tokenize.NAME and s == "return":
      end = next((t[2] for t in toks[i + 1:] if t[0] in (tokenize.NEWLINE, tokenize.COMMENT)), None)
      if end is not None and full[b:end].strip():
        spans.append((b, end))
  exprs = [full[a:e].strip() for a, e in spans]
  for j in range(1, len(spans)):
    if exprs[j] != exprs[0]:
      (a0, e0), (a1, e1) = spans[0], spans[j]
      return full[:a0] + " " + exprs[j] + full[e0:a1] + " " + exprs[0] + full[e1:]
  if spans:
    return _replace(full, spans[0][0], spans[0][1], " None")
  return None


def dropped_statement(full: str, start: int) -> Optional[str]:
  try:
    tree = ast.parse(full)
  except SyntaxError:
    return None
  lines = _offsets(full)
  for node in ast.walk(tree):
    for field in ("body", "orelse", "finalbody"):
      block = getattr(node, field, None)
      if not isinstance(block, list):
        continue
      for stmt in block[:-1]:
        if isinstance(stmt, ast.stmt) and not isinstance(stmt, ast.Return) and lines[stmt.lineno - 1] >= start:
          cut = full[:lines[stmt.lineno - 1]] + full[lines[stmt.end_lineno]:]
          try:
            ast.parse(cut)
          except SyntaxError:
            continue
          return cut
  return None


MUTATORS = {"flipped_comparison": flipped_comparison, "off_by_one": off_by_one, "swapped_return": swapped_return,
            "dropped_statement": dropped_statement}


def pool(prompt: str, solution: str) -> List[Tuple[str, str]]:
  """[(kind, completion)]: the canonical solution first, then each mutant that compiles and is new."""
  out = [("canonical", solution)]
  full, start = prompt + solution, len(prompt)
  for kind, mutate in MUTATORS.items():
    m = mutate(full, start)
    if m is None or not m.startswith(prompt):
      continue
    completion = m[len(prompt):]
    try:
      compile(m, "<mutant>", "exec")
    except (SyntaxError, ValueError):
      continue
    if all(completion != c for _, c in out):
      out.append((kind, completion))
  return out
