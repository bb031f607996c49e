"""Writing the renderings of a report: `write_renderings` (beside a report) and `python -m harness render`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from harness.atomic import write_text_atomic
from harness.render.html import render_html
from harness.render.markdown import render_markdown
from harness.results import load_report
from harness.schema import ReportError, read_json

__all__ = ["register", "write_output", "write_renderings"]


def write_output(path: Path, text: str) -> None:
    """`write_text_atomic`, with an OSError named as a ReportError."""
    try:
        write_text_atomic(path, text)
    except OSError as err:
        raise ReportError(f"cannot write {path}: {err}") from None


def write_renderings(
    doc: Mapping,
    base: str | os.PathLike[str],
    *,
    html_path: str | os.PathLike[str] | None = None,
    markdown_path: str | os.PathLike[str] | None = None,
) -> tuple[Path, Path]:
    """Write the HTML and Markdown of `doc` beside `base` (same stem, .html/.md) unless paths are given."""
    base = Path(base)
    html_out = Path(html_path) if html_path else base.with_suffix(".html")
    md_out = Path(markdown_path) if markdown_path else base.with_suffix(".md")
    write_output(html_out, render_html(doc))
    write_output(md_out, render_markdown(doc))
    return html_out, md_out


def _cli_render(args: argparse.Namespace) -> int:
    report = Path(args.report)
    # Without validation the renderings read whatever the file holds, tolerantly (a damaged report).
    doc = read_json(report) if args.no_validate else load_report(report).to_json()
    outputs = [
        (args.html or report.with_suffix(".html"), render_html),
        (args.markdown or report.with_suffix(".md"), render_markdown),
    ]
    for target, renderer in outputs:
        text = renderer(doc)
        if str(target) == "-":
            sys.stdout.write(text)
        else:
            write_output(Path(target), text)
            print(f"wrote {target} ({len(text.encode('utf-8')) / 1024:.0f} KiB)", file=sys.stderr)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `render` subcommand to the harness CLI."""
    parser = subparsers.add_parser(
        "render",
        help="render a JSON report to HTML and Markdown (no re-run)",
        description="Render a benchmark JSON report to one self-contained HTML page and a Markdown summary. "
        "The report is validated against harness/report.schema.json first.",
    )
    parser.add_argument("report", help="the JSON report (e.g. reports/latest.json)")
    parser.add_argument(
        "--html", metavar="OUT", help="HTML output (default: beside the report, .html; - for stdout)"
    )
    parser.add_argument(
        "--markdown", metavar="OUT", help="Markdown output (default: beside the report, .md; - for stdout)"
    )
    parser.add_argument(
        "--no-validate",
        action="store_true",
        help="render even a report that does not match the schema (missing parts show as n/a)",
    )
    parser.set_defaults(func=_cli_render)
