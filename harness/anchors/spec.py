"""AnchorSpec: every byte-changing setting of one anchor, read from fixtures/anchors.toml."""

from __future__ import annotations

import os
import tomllib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal

from harness.anchors.errors import AnchorError, UnknownAnchorError, suggest
from harness.anchors.settings import encoder_settings
from harness.errors import ConfigError

DEFAULT_ANCHORS = Path(__file__).resolve().parents[2] / "fixtures" / "anchors.toml"


@dataclass(frozen=True)
class AnchorSpec:
    """Every setting of one anchor encoder; see fixtures/anchors.toml for what each field means."""

    name: str
    description: str
    encoder: str
    decoder: str
    qps: tuple[int, ...]
    qp_range: tuple[int, int]
    qp_option: str
    qp_in: Literal["params", "options"]
    preset: str
    thread_count: int
    min_size: int
    options: tuple[tuple[str, str], ...] = ()
    params: tuple[tuple[str, str], ...] = ()
    sei_expect: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = field(default=())
    # Full-range sources: the encoder is told the source's range (AVCodecContext.color_range = pc,
    # i.e. `-color_range pc` on the ffmpeg command line) and writes it in the bitstream's VUI /
    # sequence header; `full_range_sei` are the settings-report tokens that say so (x265: range=1).
    full_range_sei: tuple[str, ...] = ()
    full_range: bool = False

    def __post_init__(self) -> None:
        _validate_spec(self)

    def replace(self, **changes) -> AnchorSpec:
        """A copy with some fields changed (e.g. preset="slow"), validated like the original."""
        return replace(self, **changes)

    def for_source(self, color_range: str) -> AnchorSpec:
        """This anchor for a source of `color_range` (`VideoInfo.color_range`: "tv", "pc" or "unknown").

        A full-range ("pc") source gets a spec that signals full range and expects the encoder to
        report it; any other source gets this spec unchanged (limited range, as the formats infer
        when nothing is signalled, and the bytes and anchor ids of before)."""
        if color_range != "pc" or self.full_range:
            return self
        return replace(self, full_range=True, sei_expect=(*self.sei_expect, *self.full_range_sei))

    @property
    def reports_settings(self) -> bool:
        """Whether the encoder writes its settings into the bitstream (x265, x264)."""
        table = encoder_settings().get(self.encoder)
        return table is not None and table.report is not None

    def to_json(self) -> dict:
        data = asdict(self)
        for key in ("options", "params", "env"):
            data[key] = dict(data[key])
        data["qps"] = list(self.qps)
        data["qp_range"] = list(self.qp_range)
        data["sei_expect"] = list(self.sei_expect)
        data["full_range_sei"] = list(self.full_range_sei)
        return data


def _validate_names(spec: AnchorSpec, where: str) -> None:
    """Every option and parameter name is one the settings table knows for the encoder."""
    table = encoder_settings()[spec.encoder]
    known_options, known_params = table.options, table.params
    for key, _ in spec.options:
        if key == table.params_option or key == "preset":
            raise AnchorError(f"{where}: give {key!r} as the spec's own field, not in [options]")
        if key not in known_options:
            raise AnchorError(
                f"{where}: unknown {spec.encoder} option {key!r} (PyAV would ignore it silently); "
                f"known: {sorted(known_options)}.{suggest(key, known_options)}"
            )
    for key, value in spec.params:
        if key not in known_params:
            raise AnchorError(
                f"{where}: unknown {table.params_option} key {key!r} (the encoder would ignore it); "
                f"known: {sorted(known_params)}.{suggest(key, known_params)}"
            )
        if any(c in f"{key}{value}" for c in ":=") or not value:
            raise AnchorError(
                f"{where}: parameter {key}={value!r} must be non-empty and contain no ':' or '='"
            )
    keys = [k for k, _ in spec.params] + [k for k, _ in spec.options]
    if spec.qp_option in keys:
        raise AnchorError(f"{where}: {spec.qp_option!r} is set by the QP ladder; remove it from the table")
    if spec.qp_in == "params" and spec.qp_option not in known_params:
        raise AnchorError(f"{where}: qp_option {spec.qp_option!r} is not a known {spec.encoder} parameter")
    if spec.qp_in == "options" and spec.qp_option not in known_options:
        raise AnchorError(f"{where}: qp_option {spec.qp_option!r} is not a known {spec.encoder} option")


def _validate_spec(spec: AnchorSpec) -> None:
    where = f"anchor {spec.name!r}"
    table = encoder_settings()
    if spec.encoder not in table:
        raise AnchorError(f"{where}: encoder {spec.encoder!r} is not supported; use one of {sorted(table)}")
    _validate_names(spec, where)
    if spec.qp_in not in ("params", "options"):
        raise AnchorError(f"{where}: qp_in must be 'params' or 'options', got {spec.qp_in!r}")
    lo, hi = spec.qp_range
    if not spec.qps or any(not lo <= q <= hi for q in spec.qps):
        raise AnchorError(f"{where}: qps {list(spec.qps)} must be non-empty and within qp_range {lo}..{hi}")
    if spec.thread_count < 1 or spec.min_size < 1:
        raise AnchorError(f"{where}: thread_count and min_size must be >= 1 (a pinned count, not 0 = auto)")
    report = table[spec.encoder].report
    if spec.full_range_sei and report is None:
        raise AnchorError(f"{where}: full_range_sei needs a settings report, which {spec.encoder} does not write")
    params = dict(spec.params)
    for key, value in (report.required_params if report else {}).items():
        if params.get(key) != value:
            raise AnchorError(
                f"{where}: {spec.encoder.removeprefix('lib')} needs {key}={value}: "
                "its settings SEI is how the options are verified"
            )


_SPEC_KEYS = {
    "description",
    "encoder",
    "decoder",
    "qps",
    "qp_range",
    "qp_option",
    "qp_in",
    "preset",
    "thread_count",
    "min_size",
    "options",
    "params",
    "sei_expect",
    "env",
    "full_range_sei",
}
_OPTIONAL_KEYS = {"options", "params", "sei_expect", "env", "full_range_sei"}


class _Specs(dict):
    def __missing__(self, key):
        raise UnknownAnchorError(
            f"unknown anchor {key!r}; anchors.toml defines {sorted(self)}.{suggest(str(key), self)}"
        )


def _spec_from_table(path: Path, name: str, table: object) -> AnchorSpec:
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: top-level key {name!r} is not an anchor table")
    unknown = set(table) - _SPEC_KEYS
    if unknown:
        bad = min(unknown)
        raise ConfigError(f"{path}: [{name}] has unknown key(s) {sorted(unknown)}.{suggest(bad, _SPEC_KEYS)}")
    missing = _SPEC_KEYS - set(table) - _OPTIONAL_KEYS
    if missing:
        raise ConfigError(f"{path}: [{name}] lacks {sorted(missing)}")
    try:
        return AnchorSpec(
            name=name,
            description=str(table["description"]),
            encoder=str(table["encoder"]),
            decoder=str(table["decoder"]),
            qps=tuple(int(q) for q in table["qps"]),
            qp_range=(int(table["qp_range"][0]), int(table["qp_range"][1])),
            qp_option=str(table["qp_option"]),
            qp_in=table["qp_in"],
            preset=str(table["preset"]),
            thread_count=int(table["thread_count"]),
            min_size=int(table["min_size"]),
            options=tuple((str(k), str(v)) for k, v in table.get("options", {}).items()),
            params=tuple((str(k), str(v)) for k, v in table.get("params", {}).items()),
            sei_expect=tuple(str(t) for t in table.get("sei_expect", ())),
            env=tuple((str(k), str(v)) for k, v in table.get("env", {}).items()),
            full_range_sei=tuple(str(t) for t in table.get("full_range_sei", ())),
        )
    except (TypeError, ValueError, IndexError) as err:
        raise ConfigError(f"{path}: [{name}] has a value of the wrong type: {err}") from err


def load_anchor_specs(path: str | os.PathLike[str] | None = None) -> dict[str, AnchorSpec]:
    """Read anchors.toml (default: fixtures/anchors.toml); indexing an unknown name lists the known ones."""
    path = Path(path) if path is not None else DEFAULT_ANCHORS
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"cannot read anchor settings {path}: {err}") from err
    if data.pop("schema", None) != 1:
        raise ConfigError(f"{path}: expected 'schema = 1' at the top")
    specs = _Specs()
    for name, table in data.items():
        specs[name] = _spec_from_table(path, name, table)
    return specs
