"""One escaper for untrusted text in the Markdown the harness writes (reports, comparisons, the PR gate).

Candidate names, test failures and captured text come from code under judgement: in a pull-request
comment they must not break a table, start a heading or list, open a link or image, mention
someone, or carry raw HTML.

- `md_escape(text, limit)`: one line, HTML-escaped, Markdown punctuation backslashed.
- `md_code(text, limit)`: the same text as a code span when that is safe, else `md_escape`.
"""

from __future__ import annotations

import html
import re

__all__ = ["md_code", "md_escape", "one_line"]

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")
_LINE_START = re.compile(r"[+-](\s|$)|[-=]{3,}")  # a list item, a thematic break, a setext underline
_CODE_UNSAFE = re.compile(r"[<>&@|]")


def one_line(text: object, limit: int | None) -> str:
    """`text` with every run of whitespace (newlines included) made one space, cut to `limit` characters."""
    line = " ".join(str("" if text is None else text).split())
    if limit is not None and len(line) > limit:
        line = line[: limit - 1] + "…"
    return line


def md_escape(text: object, limit: int | None = 200) -> str:
    """Untrusted text as inert Markdown: one line, HTML-escaped, Markdown punctuation backslashed.

    Safe in a table cell (| is escaped), a paragraph or a list item: no emphasis, code, link, image,
    raw HTML, @mention, heading, block quote or list can start from it. Cut to `limit` characters
    (before escaping; None: no limit).
    """
    line = one_line(text, limit)
    line = _MD_SPECIAL.sub(r"\\\1", html.escape(line, quote=False)).replace("@", "@\u200b")  # no @mentions
    line = re.sub(r"^(\d+)([.)])(?=\s|$)", r"\1\\\2", line)  # not an ordered list
    return "\\" + line if line[:1] in ("#", ">") or _LINE_START.match(line) else line


def md_code(text: object, limit: int | None = 100) -> str:
    """Untrusted text as a Markdown code span (shown literally; backticks cannot end it early).

    Text with <, >, &, @ or | is given to `md_escape` instead: a code span keeps raw HTML and
    mentions out of the rendering, but | would still split a table cell.
    """
    line = one_line(text, None).replace("`", "'")
    if _CODE_UNSAFE.search(line):
        return md_escape(line, limit)
    line = one_line(line, limit)
    return f"`{line}`" if line else "``"
