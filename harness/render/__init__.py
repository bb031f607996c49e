"""Readable views of a benchmark report: one self-contained HTML page and a short Markdown summary.

The input is the JSON document `pytest benchmarks/` writes (harness/report.py, described by
harness/report.schema.json). Nothing here re-runs anything.

- `load_report(path)` (harness.results) reads, validates and types a report; `validate_report(doc)`
  (harness.schema) checks a document and raises `ReportError` naming the path of the first problem.
- `render_html(doc)`: header, leaderboard, rate-distortion plots per clip (PNG, inline), failures
  with their captured text. No external URL: the page opens offline (html.py; plots.py draws).
- `render_markdown(doc)`: a pull-request comment: verdict, BD-rate against the rate anchor (x265)
  and the champion with arrows and words, the worst clip (markdown.py).
- `write_renderings(doc, base)` writes both beside a report (atomically); `register` adds
  `python -m harness render` (cli.py).
- view.py: what the renderings and harness.compare share (tolerant reading, number formatting).

Every string from the document is escaped (candidate names, reasons and captured text are
untrusted). Missing, None or non-finite numbers show as "n/a"; rendering never raises on them.
"""

from __future__ import annotations

from harness.render.cli import register, write_renderings
from harness.render.html import render_html
from harness.render.markdown import render_markdown
from harness.render.view import bd_words
from harness.results import load_report
from harness.schema import SCHEMA_PATH, SUPPORTED_SCHEMA_VERSIONS, ReportError, json_path, validate_report

__all__ = [
    "SCHEMA_PATH",
    "SUPPORTED_SCHEMA_VERSIONS",
    "ReportError",
    "bd_words",
    "json_path",
    "load_report",
    "register",
    "render_html",
    "render_markdown",
    "validate_report",
    "write_renderings",
]
