"""The encoder settings table (fixtures/anchor_settings.toml) and verification against it.

The table lists the option and parameter names the harness knows each encoder accepts (PyAV and
the encoders ignore unknown names silently, PITFALLS 2) and, for x265 and x264, how the encoder
reports each parameter in its settings SEI. `verify_settings` compares that report with what a
spec asked for.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from harness.anchors.errors import AnchorError, suggest
from harness.errors import ConfigError

if TYPE_CHECKING:
    from harness.anchors.spec import AnchorSpec

DEFAULT_ANCHOR_SETTINGS = Path(__file__).resolve().parents[2] / "fixtures" / "anchor_settings.toml"

_ENCODER_KEYS = {"params_option", "options", "params", "report"}
_REPORT_KEYS = {"unreported", "booleans", "names", "dash", "values", "required_params"}


@dataclass(frozen=True)
class SettingsReport:
    """How an encoder reports its applied parameters in its settings SEI."""

    unreported: frozenset[str] = frozenset()  # parameters the report leaves out
    booleans: frozenset[str] = frozenset()  # reported as 'name' (on) or 'no-name' (off)
    names: Mapping[str, str] = field(default_factory=dict)  # reported under another name
    dash: str = "-"  # what '-' in a parameter name becomes when `names` has no entry
    values: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # {param: {asked: reported}}
    required_params: Mapping[str, str] = field(default_factory=dict)  # a spec must set these

    def name(self, param: str) -> str:
        """The name under which the encoder reports `param`."""
        return self.names.get(param, param.replace("-", self.dash))


@dataclass(frozen=True)
class EncoderSettings:
    """What the harness knows about one encoder's options (one table of anchor_settings.toml)."""

    encoder: str
    params_option: str  # the AVOption carrying the parameter string, e.g. "x265-params"
    options: frozenset[str]  # known top-level AVOptions
    params: frozenset[str]  # known keys of the parameter string
    report: SettingsReport | None  # None: the encoder writes no settings report (SVT-AV1)


# ---------------------------------------------------------------------------------------------
# Loading and validating the table


def _check_keys(path: Path, where: str, table: Any, allowed: set[str], required: set[str]) -> None:
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [{where}] must be a table, got {type(table).__name__}")
    unknown = set(table) - allowed
    if unknown:
        bad = min(unknown)
        raise ConfigError(f"{path}: [{where}] has unknown key(s) {sorted(unknown)}.{suggest(bad, allowed)}")
    missing = required - set(table)
    if missing:
        raise ConfigError(f"{path}: [{where}] lacks {sorted(missing)}")


def _name_list(path: Path, where: str, key: str, value: Any) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{path}: [{where}] {key} must be a list of non-empty strings, got {value!r}")
    repeated = sorted({v for v in value if value.count(v) > 1})
    if repeated:
        raise ConfigError(f"{path}: [{where}] {key} lists {repeated} more than once")
    return frozenset(value)


def _string_table(path: Path, where: str, key: str, value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) and v for v in value.values()):
        raise ConfigError(f"{path}: [{where}] {key} must be a table of non-empty strings, got {value!r}")
    return dict(value)


def _load_report(path: Path, encoder: str, table: Any, params: frozenset[str]) -> SettingsReport:
    where = f"{encoder}.report"
    _check_keys(path, where, table, _REPORT_KEYS, set())
    dash = table.get("dash", "-")
    if dash not in ("-", "_"):
        raise ConfigError(f"{path}: [{where}] dash must be '-' or '_', got {dash!r}")
    values = table.get("values", {})
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: [{where}] values must be a table of tables, got {values!r}")
    report = SettingsReport(
        unreported=_name_list(path, where, "unreported", table.get("unreported", [])),
        booleans=_name_list(path, where, "booleans", table.get("booleans", [])),
        names=MappingProxyType(_string_table(path, where, "names", table.get("names", {}))),
        dash=dash,
        values=MappingProxyType(
            {k: MappingProxyType(_string_table(path, where, f"values.{k}", v)) for k, v in values.items()}
        ),
        required_params=MappingProxyType(
            _string_table(path, where, "required_params", table.get("required_params", {}))
        ),
    )
    for key in ("unreported", "booleans", "names", "values", "required_params"):
        for param in sorted(getattr(report, key)):
            if param not in params:
                raise ConfigError(
                    f"{path}: [{where}] {key} names {param!r}, which is not in {encoder}.params."
                    f"{suggest(param, params)}"
                )
    return report


def _load_encoder(path: Path, encoder: str, table: Any) -> EncoderSettings:
    _check_keys(path, encoder, table, _ENCODER_KEYS, _ENCODER_KEYS - {"report"})
    params_option = table["params_option"]
    options = _name_list(path, encoder, "options", table["options"])
    if params_option not in options:
        raise ConfigError(f"{path}: [{encoder}] params_option {params_option!r} is not one of its options")
    params = _name_list(path, encoder, "params", table["params"])
    report = _load_report(path, encoder, table["report"], params) if "report" in table else None
    return EncoderSettings(encoder, params_option, options, params, report)


def load_encoder_settings(path: str | Path | None = None) -> Mapping[str, EncoderSettings]:
    """Read and check anchor_settings.toml (default: fixtures/anchor_settings.toml)."""
    path = Path(path) if path is not None else DEFAULT_ANCHOR_SETTINGS
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"cannot read encoder settings {path}: {err}") from err
    if data.pop("schema", None) != 1:
        raise ConfigError(f"{path}: expected 'schema = 1' at the top")
    if not data:
        raise ConfigError(f"{path}: defines no encoder table")
    return MappingProxyType({name: _load_encoder(path, name, table) for name, table in data.items()})


@lru_cache(maxsize=1)
def encoder_settings() -> Mapping[str, EncoderSettings]:
    """The default table, read once."""
    return load_encoder_settings(DEFAULT_ANCHOR_SETTINGS)


# ---------------------------------------------------------------------------------------------
# Verification against the encoder's settings report


def parse_settings(text: str) -> dict[str, str]:
    """Parse 'options: a=1 no-b c' into {'a': '1', 'no-b': '', 'c': ''}."""
    options = text.split("options:", 1)[1] if "options:" in text else ""
    tokens = {}
    for token in options.split():
        key, _, value = token.partition("=")
        tokens[key] = value
    return tokens


def _same(reported: str, wanted: str) -> bool:
    if reported == wanted:
        return True
    try:
        return float(reported.split(":")[0]) == float(wanted.split(":")[0])
    except ValueError:
        return False


def expected_settings(spec: AnchorSpec, qp: int) -> list[tuple[str, str, str]]:
    """(asked-for text, reported key, reported value; '' = bare flag) for each verifiable setting."""
    report = encoder_settings()[spec.encoder].report
    if report is None:
        raise AnchorError(f"{spec.name}: {spec.encoder} writes no settings report to verify")
    wanted = list(spec.params) + ([(spec.qp_option, str(qp))] if spec.qp_in == "params" else [])
    out = []
    for key, value in wanted:
        asked = f"{key}={value}"
        if key in report.unreported:
            continue
        name = report.name(key)
        if key in report.values:
            out.append((asked, name, report.values[key].get(value, value)))
        elif key in report.booleans:
            flag = value.lower() in ("1", "true", "yes")
            out.append((asked, name if flag else f"no-{name}", ""))
        else:
            out.append((asked, name, value))
    for token in spec.sei_expect:
        key, _, value = token.partition("=")
        out.append((f"sei_expect {token}", key, value))
    return out


def verify_settings(spec: AnchorSpec, qp: int, text: str | None) -> dict[str, str]:
    """The encoder's reported settings, after checking each one the spec asked for."""
    if text is None:
        raise AnchorError(
            f"{spec.name}: the encoder wrote no settings SEI, so its options cannot be verified"
        )
    reported = parse_settings(text)
    if not reported:
        raise AnchorError(f"{spec.name}: settings SEI has no options list: {text[:200]!r}")
    for asked, key, value in expected_settings(spec, qp):
        if key not in reported:
            near = [k for k in reported if key.removeprefix("no-") in k]
            raise AnchorError(
                f"{spec.name}: asked for {asked} but the encoder reports no {key!r} "
                f"(related: {[f'{k}={reported[k]}' if reported[k] else k for k in near][:4]})"
            )
        if value and not _same(reported[key], value):
            raise AnchorError(f"{spec.name}: asked for {asked} but the encoder reports {key}={reported[key]}")
    return reported


def version_from_report(encoder: str, text: str) -> str:
    """The encoder's version as its settings SEI gives it ('4.2+1-e444744 (build 216)', 'core 165')."""
    if encoder == "libx265":
        m = re.match(r"x265 \(build (\d+)\) - ([^:\s]+)", text)
        return f"{m.group(2)} (build {m.group(1)})" if m else text[:40]
    m = re.match(r"x264 - core (\d+)( r\S+)?", text)
    return f"core {m.group(1)}{m.group(2) or ''}" if m else text[:40]
