"""The per-run JSON result: what was judged, on which machine, with which versions; written atomically."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from harness.atomic import write_json_atomic, write_text_atomic  # re-exported: their old home
from harness.results import SCHEMA_VERSION, RunResults
from harness.schema import validate_report

__all__ = [
    "SCHEMA_VERSION",
    "ResultCollector",
    "fragment",
    "git_info",
    "machine_info",
    "merge",
    "versions",
    "write_json_atomic",
    "write_text_atomic",
]



def machine_info() -> dict[str, object]:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {
        "node": platform.node(),
        "system": platform.system(),
        "release": platform.release(),
        "machine": platform.machine(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
    }


def versions() -> dict[str, object]:
    """Versions of everything that can change a number."""
    import av
    import cv2
    import numpy

    from harness import __version__
    from harness.anchors import anchor_versions
    from harness.judge import RESULT_VERSION
    from harness.measure import measurement_versions
    from harness.vmaf import vmaf_version

    return {
        "harness": __version__,
        "encoders": anchor_versions(),
        "vmaf": vmaf_version("vmaf"),
        "av": av.__version__,
        "ffmpeg_libraries": {k: ".".join(map(str, v)) for k, v in av.library_versions.items()},
        "numpy": numpy.__version__,
        "opencv": cv2.__version__,
        # The harness's own versions of its judging and of each metric (what keys cached results).
        "judging": RESULT_VERSION,
        "metrics": measurement_versions(),
    }


def git_info(root: Path) -> dict[str, object]:
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def merge(into: dict, part: Mapping) -> None:
    """Deep-merge a report-shaped fragment into a document (a later value wins over a scalar)."""
    for key, value in part.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            merge(into[key], value)
        else:
            into[key] = json.loads(json.dumps(value)) if isinstance(value, Mapping | list) else value


def fragment(judge, *, candidate: str | None = None, clip: str | None = None, **parts: object) -> dict:
    """What one test judged, in the report's own shape, for the collector to merge.

    `parts` name what to add: `check=True` (the candidate's contract check), `point=result`
    (a PointResult), `determinism=result`, `gate=Gate`, `bd=(anchor results, vs champion)`,
    `anchors=True` (the anchors' points on `clip`). The run's settings, the champion, the clip
    and the candidate's source always come along, so a fragment from any xdist worker is complete.
    """
    doc: dict = {
        "settings": dict(judge.run_info.get("settings", {})),
        "champion": judge.run_info.get("champion"),
        "champions": judge.run_info.get("champions") or {},
    }
    if clip is not None:
        doc["clips"] = {clip: _clip_info(judge, clip)}
    if parts.get("anchors"):
        doc["anchors"] = {
            clip: {a: [p.to_json() for p in judge.anchor_curve(clip, a)] for a in judge.config.compare_anchors}
        }
        reference = judge.complexity_reference(clip)
        if reference is not None:
            doc["complexity"] = {"per_clip": {clip: reference}}
    if candidate is None:
        return doc
    src = judge.candidates[candidate]
    cand: dict = {"sha256": src.sha256, "size_bytes": src.size_bytes, "path": str(src.path), "track": src.track}
    if parts.get("check"):
        cand["check"] = judge.check(candidate).to_json()
    if parts.get("point") is not None:
        point = parts["point"]
        cand["points"] = {f"{point.clip}/{point.point.id}": point.to_json()}
    if parts.get("determinism") is not None:
        cand["determinism"] = {clip: parts["determinism"].to_json()}
    if parts.get("gate") is not None:
        cand["gates"] = {parts["gate"].key: parts["gate"].to_json()}
    if parts.get("bd") is not None:
        results, vs = parts["bd"]
        if results is not None:
            cand["bd"] = {clip: {a: {m: r.to_json() for m, r in per.items()} for a, per in results.items()}}
        if vs is not None:
            cand["bd_vs_champion"] = {
                "champion": judge.champion_for(candidate),
                "per_clip": {clip: {m: r.to_json() for m, r in vs.items()}},
            }
    doc["candidates"] = {candidate: cand}
    return doc


def _clip_info(judge, clip: str) -> dict:
    """A clip's identity for the report; a clip that cannot be decoded is named with the error."""
    from harness.errors import ClipError

    try:
        source = judge.source(clip)
    except ClipError:
        return {"name": clip, "set": judge.clip_sets.get(clip, "public")}
    v, info = source.video, source.info
    return {
        "name": clip, "path": info.path, "sha256": v.sha256(), "width": v.width, "height": v.height,
        "frames": v.frames, "fps": str(v.fps), "codec": info.codec, "pix_fmt": info.pix_fmt,
        "color_range": info.color_range, "set": judge.clip_sets.get(clip, "public"),
    }


class ResultCollector:
    """Merges what tests recorded (possibly on xdist workers) into one typed `RunResults`."""

    def __init__(self) -> None:
        self._doc: dict = {
            "settings": {}, "clips": {}, "anchors": {}, "champion": None, "champions": {}, "candidates": {},
        }
        self.tests: dict[str, dict] = {}
        self.written: Path | None = None
        self.last_document: dict[str, object] | None = None

    @property
    def settings(self) -> dict:
        return self._doc["settings"]

    @property
    def has_results(self) -> bool:
        return bool(self.tests)

    def add(self, item: dict) -> None:
        """A fragment (see `fragment`) as a test recorded it."""
        kind = item.pop("kind", "results")
        if kind != "results":
            raise ValueError(f"unknown record kind {kind!r}: tests record report fragments (harness.report.fragment)")
        merge(self._doc, item)

    def add_test(self, nodeid: str, outcome: str, reason: str | None, *, params: dict | None = None) -> None:
        """One test's outcome; `params` (candidate, clip, rung) say what it judged."""
        params = params or {}
        entry: dict[str, object] = {"outcome": outcome, "reason": reason}
        entry.update({k: params[k] for k in ("candidate", "clip") if k in params})
        if "rung" in params:
            entry["rung"] = f"r{params['rung']}"
        self.tests[nodeid] = entry
        if "candidate" in params:
            cand = self._doc["candidates"].setdefault(params["candidate"], {})
            cand.setdefault("tests", {})[nodeid] = entry

    def results(self, root: Path) -> RunResults:
        doc = {
            "schema_version": SCHEMA_VERSION,
            "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine_info(),
            "versions": versions(),
            "git": git_info(root),
            **self._doc,
            "tests": self.tests,
        }
        return RunResults.from_json(doc, validate=False)

    def document(self, root: Path) -> dict[str, object]:
        return self.results(root).to_json()

    def write(self, report_dir: Path, *, root: Path, enrich=None) -> Path:
        """Write the document (after `enrich(doc)`, e.g. adoption verdicts) as run-*.json and latest.json."""
        doc = self.document(root)
        if enrich is not None:
            enrich(doc)
        validate_report(doc)
        self.last_document = doc
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        path = report_dir / f"run-{stamp}-{os.getpid()}.json"
        write_json_atomic(path, doc)
        write_json_atomic(report_dir / "latest.json", doc)
        return path
