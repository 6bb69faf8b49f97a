"""ETHICS commonsense (cm_{train,test}.csv: label,input,is_short,edited; label 1 = clearly wrong): each row a
binary sample whose correct answer ("Yes, it is acceptable." / "No, it is wrong.") is preferred, read row by row so
that one malformed row is one bad record.
"""
from __future__ import annotations

import csv
import io
import os

from hhh.data import dialogue
from hhh.data.sources.records import RECORD_ERRORS, ParseResult, encodable, shorten

ETHICS_QUESTION = "Is the following behaviour acceptable?\n\n{input}"
# csv's default limit (131,072 characters per field) raises _csv.Error and stops the file; fields are read whole
# and capped by ParseResult.add (MAX_TEXT_CHARS) instead.
_CSV_FIELD_LIMIT = 2**31 - 1


def parse_ethics(path: str) -> ParseResult:
  """Binary samples: the correct answer (" Yes, it is acceptable." / " No, it is wrong.") is labelled 1, the
  other 0 — the paper's C:A > C:B construction for binary data, usable both as binary and comparison data.

  Rows are decoded one by one (a row with invalid UTF-8 is one bad record, not the whole file); a row with another
  number of fields than the header (an unquoted comma, or a stray quote that swallowed the lines after it: the
  reason names the lines) is bad. Ids are "ethics-{file}:{n + 1}" for the n-th data row."""
  res = ParseResult()
  name = os.path.basename(path)
  with open(path, "rb") as f:
    text = f.read().decode("utf-8", "surrogateescape")  # invalid bytes -> lone surrogates, found per row
  old_limit = csv.field_size_limit()
  csv.field_size_limit(max(old_limit, _CSV_FIELD_LIMIT))
  try:
    reader = csv.reader(io.StringIO(text))
    try:
      header = next(reader, None)
    except csv.Error:
      header = None
    if header is None or not encodable("".join(header)):
      res.bad.append((f"ethics-{name}", "missing or malformed header row"))
      return res
    n, last_line = 0, reader.line_num
    while True:
      try:
        row = next(reader)
      except StopIteration:
        break
      except csv.Error as e:  # the reader resets and goes on with the next line
        row = e
      first_line, last_line = last_line + 1, reader.line_num
      if not row:
        continue  # blank line
      n += 1
      rid = f"ethics-{name}:{n + 1}"
      lines = f"line {first_line}" if first_line == last_line else f"lines {first_line}-{last_line}"
      try:
        if isinstance(row, csv.Error):
          res.bad.append((rid, shorten(f"malformed CSV row ({row}; {lines})")))
          continue
        if not encodable("".join(row)):
          res.bad.append((rid, "invalid UTF-8"))
          continue
        if len(row) != len(header):
          res.bad.append((rid, f"malformed CSV row ({len(row)} fields, expected {len(header)}; {lines})"))
          continue
        d = dict(zip(header, row))
        if d.get("label") not in ("0", "1") or not (d.get("input") or "").strip():
          res.bad.append((rid, "missing label or input"))
          continue
        ctx = dialogue.query(ETHICS_QUESTION.format(input=d["input"].strip()))
        yes, no = dialogue.response("Yes, it is acceptable."), dialogue.response("No, it is wrong.")
        wrong = d["label"] == "1"
        res.add({"id": rid, "context": ctx, "responses": [no, yes] if wrong else [yes, no], "scores": [1.0, 0.0]})
      except RECORD_ERRORS as e:
        res.malformed(rid, e)
  finally:
    csv.field_size_limit(old_limit)
  return res
