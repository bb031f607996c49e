"""The suite's state: candidates x clips x rate points, each judged once and remembered.

Tests ask the `Judge` for results; it runs the sandboxed calls and the measurement the
first time and returns the same frozen result afterwards. Nothing here imports a candidate.
"""

from __future__ import annotations

import functools
import hashlib
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from harness.anchors import AnchorError, AnchorSpec, anchor_id
from harness.bdrate import BDResult
from harness.cache import ResultCache
from harness.candidate import CandidateSource
from harness.clips import Clip, ClipStore
from harness.codecs import AnchorCodec, CandidateCodec, Codec, mpixel_frames
from harness.config import SuiteConfig
from harness.errors import HarnessError
from harness.gates import (
    POINT_GATES,
    Gate,
    GateName,
    bd_rate_gate,
    contract_gate,
    determinism_gate,
    point_gate,
)
from harness.measure import Measurement, measure, measurement_versions, metrics_for
from harness.results import Curve, bd_between
from harness.runner import Outcome, Runner
from harness.toolbox import toolbox_path
from harness.video import Video

# Bump when the worker, runner or judging changes in a way that could change a result.
RESULT_VERSION = "4"  # 3: calls report import_s and call_cpu_s (the limits gate's figures); 4: luma correlation

# Threads and hash seed of each kind of sandboxed call (recorded in every report's settings.seeds):
# the judged calls, and the determinism check's repeated encode and decode in other processes.
CALL_SEEDS: dict[str, dict[str, int]] = {
    "judged": {"threads": 1, "hash_seed": 0},
    "repeat_encode": {"threads": 2, "hash_seed": 1},
    "repeat_decode": {"threads": 2, "hash_seed": 12345},
}

__all__ = ["CALL_SEEDS", "AnchorPoint", "DeterminismResult", "Judge", "PointResult", "RatePoint"]


@dataclass(frozen=True)
class AnchorPoint:
    """An anchor encoder at one QP on one clip, measured like any candidate."""

    anchor: str
    anchor_id: str
    qp: int
    measurement: Measurement
    encode_s: float
    decode_s: float
    cached: bool

    def to_json(self) -> dict[str, object]:
        return {
            "anchor": self.anchor,
            "anchor_id": self.anchor_id,
            "qp": self.qp,
            "encode_s": self.encode_s,
            "decode_s": self.decode_s,
            "cached": self.cached,
            "measurement": self.measurement.to_json(),
        }


@dataclass(frozen=True)
class RatePoint:
    """One rung of a clip's rate ladder: its id (r0, r1...) and target bitrate in bits per second."""

    rung: int
    target_bps: float
    bits_per_pixel: float
    anchor_qp: int | None = None  # the rate anchor's QP whose bitrate this point asks for

    @property
    def id(self) -> str:
        return f"r{self.rung}"


@dataclass(frozen=True)
class PointResult:
    """A candidate at one rate point of one clip: outcomes, measurement, or the reason it failed."""

    candidate: str
    clip: str
    point: RatePoint
    encode: Outcome | None
    decode: Outcome | None
    measurement: Measurement | None
    failure: str | None  # one line: why there is no measurement
    failure_details: str = ""
    decoded_format: dict[str, object] = field(default_factory=dict)
    bitstream: bytes = field(default=b"", repr=False)
    cached: bool = False  # True: a passing result of the same source and input from an earlier run

    @property
    def ok(self) -> bool:
        return self.failure is None

    def to_json(self) -> dict[str, object]:
        return {
            "candidate": self.candidate,
            "clip": self.clip,
            "rung": self.point.id,
            "target_bps": self.point.target_bps,
            "target_bits_per_pixel": self.point.bits_per_pixel,
            "anchor_qp": self.point.anchor_qp,
            "cached": self.cached,
            "failure": self.failure,
            "failure_details": self.failure_details[-20_000:],
            "decoded_format": self.decoded_format,
            # Also for a point whose decode or measurement failed: `reproduce` compares every bitstream.
            "bitstream_sha256": hashlib.sha256(self.bitstream).hexdigest() if self.bitstream else None,
            "encode": self.encode.to_json() if self.encode else None,
            "decode": self.decode.to_json() if self.decode else None,
            "measurement": self.measurement.to_json() if self.measurement else None,
        }


@dataclass(frozen=True)
class DeterminismResult:
    """Repeated encodes and decodes in separate processes, with other thread counts and hash seeds."""

    candidate: str
    clip: str
    failure: str | None
    details: str
    # The sandbox's share of the repeated calls: sum of (wall - the candidate's own time).
    sandbox_overhead_s: float = 0.0

    def to_json(self) -> dict[str, object]:
        return {
            "candidate": self.candidate,
            "clip": self.clip,
            "failure": self.failure,
            "details": self.details,
            "sandbox_overhead_s": self.sandbox_overhead_s,
        }


def _format(video: Video) -> dict[str, object]:
    return {
        "width": video.width,
        "height": video.height,
        "frames": video.frames,
        "fps": str(video.fps),
        "chroma": list(video.u.shape[1:]),
    }


def format_mismatch(source: Video, decoded: Video) -> str | None:
    """Why `decoded` cannot stand for `source` (size, frame count, rate), or None."""
    problems = []
    if (decoded.width, decoded.height) != (source.width, source.height):
        problems.append(f"size {decoded.width}x{decoded.height}, expected {source.width}x{source.height}")
    if decoded.frames != source.frames:
        problems.append(f"{decoded.frames} frames, expected {source.frames}")
    if decoded.fps != source.fps:
        problems.append(f"frame rate {decoded.fps}, expected {source.fps}")
    return "decoded clip has " + "; ".join(problems) if problems else None


@functools.lru_cache(maxsize=1)
def sandbox_fingerprint() -> str:
    """sha256 of what decides how a candidate's call runs and what it may reach: the sandbox, the worker,
    the toolbox guard and its data. A result judged under other walls is never reused."""
    here = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in (*(here / f for f in _SANDBOX_FILES), toolbox_path()):
        data = path.read_bytes() if path.is_file() else b"(missing)"
        digest.update(path.name.encode() + b"\0" + data + b"\0")
    return digest.hexdigest()


_SANDBOX_FILES = ("sandbox.py", "seccomp.py", "worker.py", "runner.py", "toolbox.py", "video.py", "sealed.py")


class Judge:
    """Runs and remembers every sandboxed call of a test session."""

    def __init__(
        self,
        *,
        runner: Runner,
        config: SuiteConfig,
        clips: list[Clip],
        candidates: list[CandidateSource],
        champion: str | None = None,
        champions: Mapping[str, str] | None = None,
        max_frames: int | None,
        anchors: dict[str, AnchorSpec],
        cache: ResultCache,
    ) -> None:
        self.runner = runner
        self.config = config
        self.clips = {c.name: c for c in clips}
        self.candidates = {c.name: c for c in candidates}
        # Each track's champion (harness.ledger.TRACKS); `champion` alone is the native track's.
        given = {**({"native": champion} if champion else {}), **(champions or {})}
        self.champions = {track: name for track, name in given.items() if name in self.candidates}
        self.champion = self.champions.get("native")
        self.run_info: dict[str, object] = {}
        self.clip_sets: dict[str, str] = {name: "public" for name in self.clips}
        self.max_frames = max_frames
        self.store = ClipStore()
        self.anchor_specs = anchors
        self.cache = cache
        self._anchor_curves: dict[tuple[str, str], list[AnchorPoint]] = {}
        self._versions: dict[tuple[str, ...], dict[str, str]] = {}
        self.anchor_encodes = 0
        # Passing results are reused when the candidate's source, the clip, the limits and the
        # harness are the same (keyed in the cache); --rerun turns this off.
        self.reuse_results = True
        self.run_id = f"{os.getpid()}-{time.time_ns()}"  # the plugin sets xdist's shared run id
        self._checks: dict[str, Outcome] = {}
        self._points: dict[tuple[str, str, int], PointResult] = {}
        self._determinism: dict[tuple[str, str], DeterminismResult] = {}
        self._gates: dict[tuple[str, str, str | None, int | None], Gate] = {}
        self._bd: dict[tuple[str, str], tuple[dict | None, dict | None, str | None]] = {}
        # The complexity reference (harness.complexity): the session sets the config and anchor specs.
        self.complexity_config = None
        self.complexity_specs: dict[str, AnchorSpec] = {}
        self._complexity: dict[str, dict] = {}

    def source(self, clip: str):
        """The decoded source (video, info, raw file) of a clip; a bad clip raises ClipError."""
        return self.store.get(self.clips[clip], self.max_frames)

    @property
    def rung_count(self) -> int:
        if self.config.rate_mode == "anchor":
            return len(self.anchor_specs[self.config.rate_anchor].qps)
        return len(self.config.ladder_bpp)

    def rate_points(self, clip: str) -> list[RatePoint]:
        """Targets from low to high rate: the rate anchor's bitrates on this clip, or the bpp ladder."""
        video = self.source(clip).video
        if self.config.rate_mode == "anchor":
            curve = sorted(self.anchor_curve(clip, self.config.rate_anchor), key=lambda p: p.measurement.bitrate_bps)
            return [
                RatePoint(i, p.measurement.bitrate_bps, p.measurement.bits_per_pixel, p.qp)
                for i, p in enumerate(curve)
            ]
        pixels_per_s = video.width * video.height * float(video.fps)
        return [RatePoint(i, bpp * pixels_per_s, bpp) for i, bpp in enumerate(self.config.ladder_bpp)]

    def _measurement_versions(self, video: Video) -> dict[str, str]:
        names = metrics_for(video)
        if names not in self._versions:
            self._versions[names] = measurement_versions(names)
        return self._versions[names]

    def anchor_curve(self, clip: str, anchor: str) -> list[AnchorPoint]:
        """The anchor at each of its QPs on `clip`, from the cache when every input is the same."""
        key = (clip, anchor)
        if key not in self._anchor_curves:
            source = self.source(clip)
            spec = self.anchor_specs[anchor].for_source(source.info.color_range)  # full range signalled
            video = source.video
            ident = anchor_id(spec)  # differs for a full-range source: so does the cache key
            points = []
            for rung, qp in enumerate(spec.qps):
                fields = {
                    "clip_sha256": video.sha256(),
                    "anchor_id": ident,
                    "qp": qp,
                    "versions": self._measurement_versions(video),
                }
                with self.cache.lock("anchors", fields):
                    points.append(self._anchor_point(clip, anchor, spec, ident, RatePoint(rung, 0.0, 0.0, qp), fields))
            self._anchor_curves[key] = points
        return self._anchor_curves[key]

    def _anchor_point(self, clip, anchor, spec, ident, point: RatePoint, fields) -> AnchorPoint:
        """The anchor at one QP, measured through the same point path as a candidate."""
        qp = point.anchor_qp
        cached = self.cache.get("anchors", fields)
        if cached is not None:
            return AnchorPoint(
                anchor, ident, qp, Measurement.from_json(cached["measurement"]),
                cached["encode_s"], cached["decode_s"], True,
            )
        result = self._measure_point(AnchorCodec(anchor, spec), clip, point)
        self.anchor_encodes += 1
        if not result.ok:
            raise AnchorError(f"anchor {anchor} at QP {qp} on {clip}: {result.failure_details}")
        point = AnchorPoint(anchor, ident, qp, result.measurement, result.encode.wall_s, result.decode.wall_s, False)
        self.cache.put("anchors", fields, point.to_json())
        return point

    def complexity_reference(self, clip: str) -> dict | None:
        """The complexity anchors' CPU time on `clip` (harness.complexity.measure_costs), measured once
        per process and never cached: the ratios need times of this run; an anchor that fails gives
        {"error": ...}. None when the run measures no complexity."""
        if self.complexity_config is None:
            return None
        if clip not in self._complexity:
            from harness.complexity import measure_costs

            try:
                self._complexity[clip] = measure_costs(
                    self.source(clip).video, self.complexity_specs, self.complexity_config
                )
            except HarnessError as err:
                self._complexity[clip] = {"error": f"complexity reference on {clip}: {err}"}
        return self._complexity[clip]

    def curve(self, candidate: str, clip: str) -> list[Measurement]:
        """The candidate's measurements at every rate point; raises naming the first failed point."""
        points = [self.point(candidate, clip, r) for r in range(self.rung_count)]
        failed = [p for p in points if not p.ok]
        if failed:
            raise HarnessError(
                f"no rate-distortion curve for {candidate}: {len(failed)} of {len(points)} rate points failed "
                f"(first: {failed[0].point.id}: {failed[0].failure})"
            )
        return [p.measurement for p in points]

    def _bd_metrics(self, ref: list[Measurement], test: list[Measurement]) -> dict[str, BDResult]:
        return bd_between(Curve.of(ref), Curve.of(test), self.config.bd_metrics, self.config.bd_method)

    def champion_for(self, candidate: str) -> str | None:
        """The champion `candidate` is compared with: its own track's (None for the champion itself)."""
        champ = self.champions.get(getattr(self.candidates[candidate], "track", "native"))
        return champ if champ != candidate else None

    def bd_vs_candidate(self, candidate: str, reference: str, clip: str) -> dict[str, BDResult]:
        """BD-rate of `candidate` against another candidate (the champion) on each BD metric."""
        return self._bd_metrics(self.curve(reference, clip), self.curve(candidate, clip))

    def bd(self, candidate: str, clip: str) -> dict[str, dict[str, BDResult]]:
        """BD-rate of the candidate against each anchor on each BD metric; raises if a point failed."""
        points = [self.point(candidate, clip, r) for r in range(self.rung_count)]
        self.curve(candidate, clip)
        mine = [p.measurement for p in points]
        missing = [a for a in self.config.compare_anchors if a not in self.anchor_specs]
        if missing:
            raise HarnessError(f"no BD-rate: the anchors {missing} are not configured for this run")
        return {
            anchor: self._bd_metrics([p.measurement for p in self.anchor_curve(clip, anchor)], mine)
            for anchor in self.config.compare_anchors
        }

    def gate(self, name: GateName, candidate: str, clip: str | None = None, rung: int | None = None) -> Gate:
        """A gate's result (harness.gates), evaluated once and remembered."""
        key = (name, candidate, clip, rung)
        if key not in self._gates:
            self._gates[key] = self._evaluate(name, candidate, clip, rung)
        return self._gates[key]

    @property
    def gates(self) -> list[Gate]:
        """Every gate evaluated so far, in order."""
        return list(self._gates.values())

    def _evaluate(self, name: GateName, candidate: str, clip: str | None, rung: int | None) -> Gate:
        if name == "contract":
            return contract_gate(self.candidates[candidate], self.check(candidate), self.config)
        if name in POINT_GATES:
            point = self.point(candidate, clip, rung)
            reference = self.anchor_psnr_y(point) if name == "quality" else None
            return point_gate(name, point, self.source(clip).video, self.config, anchor_psnr_y=reference)
        if name == "determinism":
            return determinism_gate(self.determinism(candidate, clip))
        if name == "bd_rate":
            results, _, error = self.bd_results(candidate, clip)
            return bd_rate_gate(candidate, clip, results, self.config, error=error)
        raise ValueError(f"unknown gate {name!r}")

    def anchor_psnr_y(self, point: PointResult) -> float | None:
        """The rate anchor's PSNR-Y at the same rate point as `point` (its QP whose bitrate the point
        asked for); None in "ladder" rate mode, where no anchor point has the same rate."""
        if point.point.anchor_qp is None or self.config.rate_mode != "anchor":
            return None
        for anchor_point in self.anchor_curve(point.clip, self.config.rate_anchor):
            if anchor_point.qp == point.point.anchor_qp:
                return anchor_point.measurement.mean.get("psnr_y")
        return None

    def bd_results(self, candidate: str, clip: str) -> tuple[dict | None, dict | None, str | None]:
        """(BD-rate against each anchor, against the champion, the error that stopped either)."""
        key = (candidate, clip)
        if key not in self._bd:
            try:
                results = self.bd(candidate, clip)
            except HarnessError as err:
                self._bd[key] = (None, None, str(err))
                return self._bd[key]
            vs, error = None, None
            champ = self.champion_for(candidate)
            if champ:
                try:
                    vs = self.bd_vs_candidate(candidate, champ, clip)
                except HarnessError as err:
                    error = f"no comparison with the champion: {err}"
            self._bd[key] = (results, vs, error)
        return self._bd[key]

    def check(self, candidate: str) -> Outcome:
        if candidate not in self._checks:
            self._checks[candidate] = self.runner.check(self.candidates[candidate])
        return self._checks[candidate]

    def point(self, candidate: str, clip: str, rung: int) -> PointResult:
        key = (candidate, clip, rung)
        if key not in self._points:
            self._points[key] = self._cached_point(candidate, clip, rung)
        return self._points[key]

    def _result_fields(self, candidate: str, clip: str, **extra: object) -> dict[str, object]:
        """Everything a candidate's result depends on: its source, the clip, the harness, the limits."""
        video = self.source(clip).video
        return {
            "candidate_sha256": self.candidates[candidate].sha256,
            "clip_sha256": video.sha256(),
            "harness": RESULT_VERSION,
            "limits": self.runner.limits.to_json(),
            "sandbox": self.runner.sandbox.mode,
            "sandbox_code": sandbox_fingerprint(),
            "versions": self._measurement_versions(video),
            **extra,
            # With reuse off, results are shared only between the workers of this run.
            **({} if self.reuse_results else {"run": self.run_id}),
        }

    def _cached_point(self, candidate: str, clip: str, rung: int) -> PointResult:
        """A passing result of the same source on the same input from an earlier run (or, with
        reuse off, from another worker of this run), else a fresh one."""
        point = self.rate_points(clip)[rung]
        fields = self._result_fields(candidate, clip, target_bps=point.target_bps)
        with self.cache.lock(self._kind("points"), fields):
            return self._point_locked(candidate, clip, rung, point, fields)

    def _kind(self, kind: str) -> str:
        """Cache section: shared across runs, or (with reuse off) only between this run's workers."""
        return kind if self.reuse_results else f"run-{kind}"

    def _point_locked(self, candidate, clip, rung, point, fields) -> PointResult:
        cached = self.cache.get(self._kind("points"), fields)
        if isinstance(cached, dict):
            bitstream = self.cache.get_blob(str(cached.get("bitstream_sha256")))
            if bitstream is not None:
                data = cached["point"]
                return PointResult(
                    candidate=candidate, clip=clip, point=point,
                    encode=Outcome.from_json(data["encode"]), decode=Outcome.from_json(data["decode"]),
                    measurement=Measurement.from_json(data["measurement"]), failure=None,
                    decoded_format=data["decoded_format"], bitstream=bitstream, cached=True,
                )
        result = self._judge_point(candidate, clip, rung)
        if result.ok:
            sha = self.cache.put_blob(result.bitstream)
            self.cache.put(self._kind("points"), fields, {"point": result.to_json(), "bitstream_sha256": sha})
        return result

    def _judge_point(self, candidate: str, clip: str, rung: int) -> PointResult:
        point = self.rate_points(clip)[rung]
        check = self.check(candidate)
        if not check.ok:
            return PointResult(
                candidate=candidate, clip=clip, point=point, encode=None, decode=None, measurement=None,
                failure=check.reason, failure_details=check.details(),
            )
        return self._measure_point(CandidateCodec(self.candidates[candidate], self.runner), clip, point)

    def _measure_point(self, codec: Codec, clip: str, point: RatePoint) -> PointResult:
        """The one point path, for candidates and anchors alike: encode the source at the rate point,
        decode, check the decoded format, measure against the source."""
        base = {"candidate": codec.name, "clip": clip, "point": point}
        source = self.source(clip)
        enc, bitstream = codec.encode(source.video, source.sealed, point.target_bps, point.anchor_qp)
        if not enc.ok or bitstream is None:
            return PointResult(
                **base, encode=enc, decode=None, measurement=None, failure=enc.reason,
                failure_details=enc.details(),
            )
        dec, decoded = codec.decode(bitstream, source.video)
        if not dec.ok or decoded is None:
            return PointResult(
                **base, encode=enc, decode=dec, measurement=None, failure=dec.reason,
                failure_details=dec.details(), bitstream=bitstream,
            )
        mismatch = format_mismatch(source.video, decoded)
        if mismatch:
            return PointResult(
                **base, encode=enc, decode=dec, measurement=None, failure=mismatch,
                failure_details=mismatch, decoded_format=_format(decoded), bitstream=bitstream,
            )
        try:
            measured = measure(source.video, bitstream, decoded)
        except HarnessError as err:
            return PointResult(
                **base, encode=enc, decode=dec, measurement=None, failure=f"measurement failed: {err}",
                failure_details=str(err), decoded_format=_format(decoded), bitstream=bitstream,
            )
        return PointResult(
            **base, encode=enc, decode=dec, measurement=measured, failure=None,
            decoded_format=_format(decoded), bitstream=bitstream,
        )

    def determinism_rung(self, clip: str) -> int:
        """The middle rate point: the one a report shows first for a candidate x clip."""
        return self.rung_count // 2

    def determinism(self, candidate: str, clip: str) -> DeterminismResult:
        key = (candidate, clip)
        if key not in self._determinism:
            fields = self._result_fields(candidate, clip, rungs="all")
            with self.cache.lock(self._kind("determinism"), fields):
                cached = self.cache.get(self._kind("determinism"), fields)
                if isinstance(cached, dict) and cached.get("failure") is None:
                    result = DeterminismResult(candidate, clip, None, f"{cached.get('details', '')} (cached)")
                else:
                    result = self._judge_determinism(candidate, clip)
                    if result.failure is None:
                        self.cache.put(self._kind("determinism"), fields, result.to_json())
            self._determinism[key] = result
        return self._determinism[key]

    def _judge_determinism(self, candidate: str, clip: str) -> DeterminismResult:
        """At every rate point: encode again (2 threads, another hash seed) and decode again.

        Every point, not one: a candidate that knows which point is checked (the middle one)
        could be deterministic there and not elsewhere. Each repeat runs in its own process.
        """
        overhead = 0.0
        for rung in range(self.rung_count):
            first = self.point(candidate, clip, rung)
            if not first.ok or first.measurement is None:
                return DeterminismResult(
                    candidate, clip, f"{first.point.id}: no first result to compare: {first.failure}", ""
                )
            failure, details, spent = self._repeat(candidate, clip, first)
            overhead += spent
            if failure:
                return DeterminismResult(candidate, clip, f"{first.point.id}: {failure}", details, overhead)
        n = self.rung_count
        return DeterminismResult(
            candidate, clip, None, f"at each of {n} rate points: 2 encodes and 2 decodes identical", overhead
        )

    def _repeat(self, candidate: str, clip: str, first: PointResult) -> tuple[str | None, str, float]:
        """(failure, details, sandbox overhead) of repeating one point's encode and decode."""
        cand = self.candidates[candidate]
        size = mpixel_frames(self.source(clip).video)
        enc, again = self.runner.encode(
            cand, self.source(clip).sealed, first.point.target_bps, mpixel_frames=size, **CALL_SEEDS["repeat_encode"]
        )
        if not enc.ok or again is None:
            return f"second encode: {enc.reason}", enc.details(), enc.sandbox_overhead_s
        if again != first.bitstream:
            sha = hashlib.sha256(again).hexdigest()
            failure = (
                f"two encodes of the same input gave different bytes ({first.measurement.bytes} bytes "
                f"sha256 {first.measurement.bitstream_sha256[:12]} vs {len(again)} bytes sha256 {sha[:12]}; "
                f"first difference at byte {_first_difference(first.bitstream, again)})"
            )
            return failure, "second encode ran with OMP/MKL threads=2 and PYTHONHASHSEED=1", enc.sandbox_overhead_s
        dec, video = self.runner.decode(cand, first.bitstream, mpixel_frames=size, **CALL_SEEDS["repeat_decode"])
        spent = enc.sandbox_overhead_s + dec.sandbox_overhead_s
        if not dec.ok or video is None:
            return f"repeated decode: {dec.reason}", dec.details(), spent
        expected = first.measurement.decoded_sha256
        if video.sha256() != expected:
            failure = (
                f"decoding the same bitstream gave different frames: first {expected[:12]}, "
                f"threads=2 PYTHONHASHSEED=12345: {video.sha256()[:12]}"
            )
            return failure, "", spent
        return None, "", spent


def _first_difference(a: bytes, b: bytes) -> int:
    """Offset of the first byte where `a` and `b` differ (the shorter length if one is a prefix)."""
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    lo, hi = 0, n  # a[:lo] == b[:lo], a[:hi] != b[:hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid
    return lo
