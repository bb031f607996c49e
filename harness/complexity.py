"""Complexity: encode and decode CPU time per megapixel-frame, as ratios to x265's, measured in the same run.

A codec that needs 2 % fewer bits than HEVC while decoding 200 times slower is not a better
codec, and seconds are only comparable on one machine. So every run times the reference anchor
(x265 at its preset in fixtures/anchors.toml, decoded by libavcodec's hevc) on each clip, at each
of its QPs, and each codec's figure is its CPU seconds per megapixel-frame divided by the
reference's on the same clip: 1.0 = as costly as x265, 10 = ten times x265's CPU time. Over clips
the ratios are averaged geometrically. The anchors' cached results carry no usable times, so
`measure_costs` encodes and decodes them again (timed only, nothing measured or cached).

A candidate's figure is the CPU time of its `encode` / `decode` call alone (`call_cpu_s`, all
threads and reaped children, without interpreter start and imports) where the report has it,
else the whole sandboxed process's (`cpu_s`), and says which. The reference is timed with the
process's CPU time (`time.process_time`: every thread), so a threaded codec is charged for all
of its threads on either side.

`front` places codecs on the rate-distortion-complexity plane: BD-rate against the rate anchor
(lower is better) against the encode or the decode ratio (lower is better). The Pareto front is
the set no other codec beats on both; a codec off the front is `bd_gap_points` BD-rate points
worse than the best front codec that is at most as complex, and `complexity_factor` times more
complex than the cheapest front codec at least as good.
"""

from __future__ import annotations

import math
import os
import time
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from harness.errors import ConfigError, HarnessError
from harness.video import Video

__all__ = [
    "Axis",
    "CodecCost",
    "ComplexityConfig",
    "anchor_ratios",
    "candidate_complexity",
    "front",
    "load_complexity_config",
    "measure_cost",
    "measure_costs",
]

Axis = Literal["encode", "decode"]
AXES: tuple[Axis, ...] = ("encode", "decode")
JSON = dict[str, Any]


class ComplexityError(HarnessError):
    """The complexity reference cannot be measured (a bad config, an anchor that fails)."""


@dataclass(frozen=True, kw_only=True)
class ComplexityConfig:
    """fixtures/complexity.toml: the reference anchor, the anchors drawn beside candidates, repeats."""

    reference: str = "x265"
    anchors: tuple[str, ...] = ("x265", "x264", "svtav1")
    repeats: int = 2
    max_frames: int = 30

    def to_json(self) -> JSON:
        return {
            "reference": self.reference, "anchors": list(self.anchors), "repeats": self.repeats,
            "max_frames": self.max_frames,
        }


def load_complexity_config(path: str | os.PathLike[str]) -> ComplexityConfig:
    """Read fixtures/complexity.toml; absent means the defaults, an unknown or mistyped key raises ConfigError."""
    path = Path(path)
    if not path.exists():
        return ComplexityConfig()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"cannot read the complexity config {path}: {err}") from err
    table = data.get("complexity", {})
    known = {"reference", "anchors", "repeats", "max_frames"}
    unknown = sorted(set(data) - {"complexity"}) + sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {unknown}; known: [complexity] {', '.join(sorted(known))}")
    reference, anchors, repeats = table.get("reference", "x265"), table.get("anchors", ["x265"]), table.get("repeats", 2)
    if not isinstance(reference, str) or not isinstance(anchors, list) or not all(isinstance(a, str) for a in anchors):
        raise ConfigError(f"{path}: complexity.reference must be an anchor name and complexity.anchors a list of them")
    if reference not in anchors:
        raise ConfigError(f"{path}: complexity.reference {reference!r} must be one of complexity.anchors {anchors}")
    if not isinstance(repeats, int) or isinstance(repeats, bool) or not 1 <= repeats <= 20:
        raise ConfigError(f"{path}: complexity.repeats = {repeats!r} must be an integer 1..20")
    max_frames = table.get("max_frames", 30)
    if not isinstance(max_frames, int) or isinstance(max_frames, bool) or max_frames < 2:
        raise ConfigError(f"{path}: complexity.max_frames = {max_frames!r} must be an integer of at least 2")
    return ComplexityConfig(reference=reference, anchors=tuple(anchors), repeats=repeats, max_frames=max_frames)


# ----------------------------------------------------------------------------- measuring the anchors


@dataclass(frozen=True)
class CodecCost:
    """An anchor's CPU time on one clip: encode and decode of every QP, the least of `repeats` runs."""

    anchor: str
    anchor_id: str
    qps: tuple[int, ...]
    megapixel_frames: float  # width * height * frames / 1e6 of the clip
    encode_samples: tuple[float, ...]  # per repeat: CPU seconds of the encodes at every QP
    decode_samples: tuple[float, ...]

    def per_mpf(self, axis: Axis) -> float:
        """CPU seconds per megapixel-frame of one encode (or decode), mean over the QPs."""
        samples = self.encode_samples if axis == "encode" else self.decode_samples
        return min(samples) / len(self.qps) / self.megapixel_frames

    def to_json(self) -> JSON:
        return {
            "anchor": self.anchor,
            "anchor_id": self.anchor_id,
            "qps": list(self.qps),
            "megapixel_frames": self.megapixel_frames,
            "encode_samples_s": list(self.encode_samples),
            "decode_samples_s": list(self.decode_samples),
            "encode_cpu_s_per_mpf": self.per_mpf("encode"),
            "decode_cpu_s_per_mpf": self.per_mpf("decode"),
        }


def _decode_cpu(bitstream: bytes, decoder: str, frames: int) -> float:
    """CPU seconds of decoding `bitstream` with one decoder thread, the frames made into numpy planes
    as a candidate's decoder must."""
    import av

    from harness.anchors.bitstream import av1_temporal_units

    start = time.process_time()
    ctx = av.CodecContext.create(decoder, "r")
    ctx.thread_count = 1
    packets = [av.Packet(u) for u in av1_temporal_units(bitstream)] if decoder == "libdav1d" else (
        ctx.parse(bitstream) + ctx.parse(None)
    )
    count = 0
    for packet in [*packets, None]:
        for frame in ctx.decode(packet):
            frame.to_ndarray(format="yuv420p")
            count += 1
    spent = time.process_time() - start
    if count != frames:
        raise ComplexityError(f"{decoder} decoded {count} frames of a {frames}-frame stream")
    return spent


def _sample(video: Video, spec) -> tuple[float, float]:
    """(encode, decode) CPU seconds of `video` with the anchor `spec` at each of its QPs."""
    from harness.anchors import encode_anchor

    enc = dec = 0.0
    for qp in spec.qps:
        start = time.process_time()
        bitstream = encode_anchor(video, spec, qp)
        enc += time.process_time() - start
        dec += _decode_cpu(bitstream, spec.decoder, video.frames)
    return enc, dec


def _cost(video: Video, spec, samples: list[tuple[float, float]]) -> CodecCost:
    from harness.anchors import anchor_id

    return CodecCost(
        anchor=spec.name, anchor_id=anchor_id(spec), qps=tuple(spec.qps),
        megapixel_frames=video.width * video.height * video.frames / 1e6,
        encode_samples=tuple(e for e, _ in samples), decode_samples=tuple(d for _, d in samples),
    )


def measure_cost(video: Video, spec, *, repeats: int) -> CodecCost:
    """Encode and decode `video` with the anchor `spec` at each of its QPs, `repeats` times, timed."""
    return _cost(video, spec, [_sample(video, spec) for _ in range(repeats)])


def measure_costs(video: Video, specs: Mapping[str, Any], config: ComplexityConfig) -> JSON:
    """One clip's complexity reference for the report: each configured anchor's `CodecCost`.

    The anchors take turns within each repeat, so a change in the machine's load between repeats
    moves every anchor's sample alike and the ratios less."""
    missing = [a for a in config.anchors if a not in specs]
    if missing:
        raise ComplexityError(f"complexity anchors {missing} are not in anchors.toml: {sorted(specs)}")
    # Per megapixel-frame, the clip's first frames stand for the whole: a long clip's reference
    # would otherwise cost the run repeats x its anchor encodes again.
    video = video.head(min(video.frames, config.max_frames))
    samples: dict[str, list[tuple[float, float]]] = {a: [] for a in config.anchors}
    for _ in range(config.repeats):
        for anchor in config.anchors:
            samples[anchor].append(_sample(video, specs[anchor]))
    return {
        "reference": config.reference,
        "repeats": config.repeats,
        "anchors": {a: _cost(video, specs[a], samples[a]).to_json() for a in config.anchors},
    }


# ----------------------------------------------------------------------------- ratios from a report


def _geomean(values: Sequence[float]) -> float | None:
    good = [v for v in values if v > 0 and math.isfinite(v)]
    return math.exp(sum(map(math.log, good)) / len(good)) if good and len(good) == len(values) else None


def _reference_per_mpf(clip_ref: Mapping, axis: Axis) -> float | None:
    anchors = clip_ref.get("anchors") or {}
    ref = anchors.get(clip_ref.get("reference", "x265"))
    value = (ref or {}).get(f"{axis}_cpu_s_per_mpf")
    return float(value) if value else None


def _call_cpu(call: Mapping | None) -> tuple[float | None, str | None]:
    if not call or not call.get("ok"):
        return None, None
    if call.get("call_cpu_s") is not None:
        return float(call["call_cpu_s"]), "call_cpu_s"
    return float(call["cpu_s"]), "cpu_s"


def candidate_complexity(points: Mapping[str, Mapping], clips: Mapping[str, Mapping], references: Mapping) -> JSON | None:
    """A candidate's encode and decode ratios to the reference, per clip and over clips (geometric mean).

    `points` are the candidate's rate points ("clip/rN" -> point record), `clips` the report's
    clips (size and frames), `references` clip -> `measure_costs` JSON. A clip counts only when
    every rate point has both calls' times; None when no clip does."""
    per_clip: JSON = {}
    by_clip: dict[str, list[Mapping]] = {}
    for key, point in points.items():
        by_clip.setdefault(key.rsplit("/", 1)[0], []).append(point)
    for clip, records in sorted(by_clip.items()):
        info, ref = clips.get(clip) or {}, references.get(clip)
        if not ref or not info.get("width"):
            continue
        mpf = info["width"] * info["height"] * info["frames"] / 1e6
        entry: JSON = {"points": len(records), "cached_points": sum(bool(p.get("cached")) for p in records)}
        for axis in AXES:
            times = [_call_cpu(p.get(axis)) for p in records]
            reference = _reference_per_mpf(ref, axis)
            if any(t is None for t, _ in times) or not reference:
                break
            mine = sum(t for t, _ in times) / len(times) / mpf
            entry[f"{axis}_cpu_s_per_mpf"] = mine
            entry[f"{axis}_ratio"] = mine / reference
            entry["cpu_field"] = "call_cpu_s" if all(f == "call_cpu_s" for _, f in times) else "cpu_s"
        else:
            per_clip[clip] = entry
    if not per_clip:
        return None
    out: JSON = {"per_clip": per_clip, "clips": sorted(per_clip)}
    for axis in AXES:
        out[f"{axis}_ratio"] = _geomean([c[f"{axis}_ratio"] for c in per_clip.values()])
    out["cpu_field"] = "call_cpu_s" if all(c["cpu_field"] == "call_cpu_s" for c in per_clip.values()) else "cpu_s"
    return out


def anchor_ratios(references: Mapping[str, Mapping]) -> dict[str, JSON]:
    """Each measured anchor's encode and decode ratio to the reference (geometric mean over clips)."""
    names = sorted({a for ref in references.values() for a in (ref.get("anchors") or {})})
    out: dict[str, JSON] = {}
    for name in names:
        entry: JSON = {"clips": []}
        for axis in AXES:
            ratios = []
            for clip, ref in sorted(references.items()):
                mine = ((ref.get("anchors") or {}).get(name) or {}).get(f"{axis}_cpu_s_per_mpf")
                reference = _reference_per_mpf(ref, axis)
                if mine and reference:
                    ratios.append(float(mine) / reference)
                    if axis == "encode":
                        entry["clips"].append(clip)
            entry[f"{axis}_ratio"] = _geomean(ratios)
        out[name] = entry
    return out


def front(entries: Mapping[str, tuple[float | None, float | None]]) -> dict[str, JSON]:
    """Pareto front of (BD-rate, complexity ratio) per name, and each name's distance to it.

    Lower is better on both. A name without both values gets `on_front` None and the reason."""
    usable = {n: (b, c) for n, (b, c) in entries.items() if b is not None and c is not None and c > 0}
    on = {
        n for n, (b, c) in usable.items()
        if not any((b2 <= b and c2 <= c) and (b2 < b or c2 < c) for m, (b2, c2) in usable.items() if m != n)
    }
    out: dict[str, JSON] = {}
    for name, (b, c) in entries.items():
        if name not in usable:
            missing = "no comparable BD-rate" if b is None else "no complexity figure"
            out[name] = {"on_front": None, "bd_gap_points": None, "complexity_factor": None, "why": missing}
            continue
        gap = b - min(usable[m][0] for m in on if usable[m][1] <= c)
        factor = c / min(usable[m][1] for m in on if usable[m][0] <= b)
        out[name] = {"on_front": name in on, "bd_gap_points": gap, "complexity_factor": factor, "why": None}
    return out
