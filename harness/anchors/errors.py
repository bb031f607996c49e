"""The anchors' exceptions and the 'Did you mean' hint their messages share."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from harness.errors import HarnessError


class AnchorError(HarnessError):
    """An anchor encoder or decoder failed, was misconfigured, or did not apply its settings."""


class UnknownAnchorError(AnchorError, KeyError):
    """An anchor name that anchors.toml does not define."""

    def __str__(self) -> str:  # KeyError would print the repr of the message
        return str(self.args[0])


def suggest(name: str, known: Iterable[str]) -> str:
    """' Did you mean 'x'?' for the closest known name, or ''."""
    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f" Did you mean {close[0]!r}?" if close else ""
