"""The one exception family of the harness; every error names what was wrong and how to fix it."""

from __future__ import annotations


class HarnessError(Exception):
    """Base class of every error the harness raises on purpose."""


class ClipError(HarnessError):
    """A clip could not be read, found, downloaded or verified."""


class VideoFormatError(HarnessError, ValueError):
    """Planes, sizes, dtypes or a serialized video do not match the 8-bit YUV 4:2:0 contract."""


class CandidateError(HarnessError):
    """A candidate module is malformed or broke its contract."""


class SandboxError(HarnessError):
    """The sandbox could not be set up (missing bubblewrap, bad limits)."""


class ConfigError(HarnessError, ValueError):
    """A configuration file or option has an invalid or unknown value."""
