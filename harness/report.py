"""The per-run JSON result: what was judged, on which machine, with which versions; written atomically."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from harness.atomic import write_json_atomic, write_text_atomic  # re-exported: their old home

__all__ = [
    "SCHEMA_VERSION",
    "ResultCollector",
    "git_info",
    "machine_info",
    "versions",
    "write_json_atomic",
    "write_text_atomic",
]

SCHEMA_VERSION = 1


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
    from harness.vmaf import vmaf_version

    return {
        "harness": __version__,
        "encoders": anchor_versions(),
        "vmaf": vmaf_version("vmaf"),
        "av": av.__version__,
        "ffmpeg_libraries": {k: ".".join(map(str, v)) for k, v in av.library_versions.items()},
        "numpy": numpy.__version__,
        "opencv": cv2.__version__,
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


class ResultCollector:
    """Gathers what tests recorded (possibly on xdist workers) into one result document."""

    def __init__(self) -> None:
        self.settings: dict[str, object] = {}
        self.clips: dict[str, dict] = {}
        self.candidates: dict[str, dict] = {}
        self.anchors: dict[str, dict] = {}
        self.champion: dict[str, object] | None = None
        self.tests: dict[str, dict] = {}
        self.written: Path | None = None
        self.last_document: dict[str, object] | None = None

    @property
    def has_results(self) -> bool:
        return bool(self.tests)

    def _candidate(self, name: str) -> dict:
        return self.candidates.setdefault(name, {"points": {}, "determinism": {}, "tests": {}})

    def add(self, item: dict) -> None:
        kind = item.pop("kind")
        if kind == "clip":
            self.clips[item["name"]] = item
        elif kind == "candidate":
            self._candidate(item["name"]).update({k: v for k, v in item.items() if k != "name"})
        elif kind == "point":
            self._candidate(item["candidate"])["points"][f"{item['clip']}/{item['rung']}"] = item
        elif kind == "determinism":
            self._candidate(item["candidate"])["determinism"][item["clip"]] = item
        elif kind == "bd":
            self._candidate(item["candidate"]).setdefault("bd", {})[item["clip"]] = item["results"]
        elif kind == "bd_vs_champion":
            slot = self._candidate(item["candidate"]).setdefault(
                "bd_vs_champion", {"champion": item["champion"], "per_clip": {}}
            )
            slot["per_clip"][item["clip"]] = item["results"]
        elif kind == "run":
            self.champion = item.get("champion")
            self.settings.update(item.get("settings", {}))
        elif kind == "anchor":
            self.anchors.setdefault(item["clip"], {})[item["anchor"]] = item["points"]
        elif kind == "settings":
            self.settings.update(item)

    def add_test(self, nodeid: str, outcome: str, reason: str | None, *, params: dict | None = None) -> None:
        """One test's outcome; `params` (candidate, clip, rung) say what it judged."""
        params = params or {}
        entry: dict[str, object] = {"outcome": outcome, "reason": reason}
        entry.update({k: params[k] for k in ("candidate", "clip") if k in params})
        if "rung" in params:
            entry["rung"] = f"r{params['rung']}"
        self.tests[nodeid] = entry
        if "candidate" in params:
            self._candidate(params["candidate"])["tests"][nodeid] = entry

    def _by_set(self, per_clip: dict) -> dict[str, object] | None:
        """Public and held-out BD-rates side by side, flagging a candidate tuned to the public clips."""
        sets = {name: info.get("set", "public") for name, info in self.clips.items()}
        if "heldout" not in sets.values():
            return None
        suite = self.settings.get("suite", {})
        anchor, metric = suite.get("rate_anchor", "x265"), (suite.get("bd_metrics") or ["psnr_yuv"])[0]
        out: dict[str, object] = {}
        for label in ("public", "heldout"):
            subset = {c: r for c, r in per_clip.items() if sets.get(c) == label}
            out[label] = overall_bd(subset).get(anchor, {}).get(metric, {}).get("bd_rate")
        limit = float(suite.get("heldout_gap_percent", 10.0))
        gap = out["heldout"] - out["public"] if None not in (out["heldout"], out["public"]) else None
        out.update(
            anchor=anchor, metric=metric, gap_percent=gap, limit_percent=limit,
            flag=(
                f"held-out clips need {gap:.1f} points more bits than the public ones (limit {limit:g}): "
                "tuned to the public clips?"
                if gap is not None and gap > limit else None
            ),
        )
        return out

    def document(self, root: Path) -> dict[str, object]:
        for cand in self.candidates.values():
            cand["bd_overall"] = overall_bd(cand.get("bd", {}))
            cand["bd_by_set"] = self._by_set(cand.get("bd", {}))
            vs = cand.get("bd_vs_champion")
            if vs:
                vs["overall"] = overall_bd({clip: {"champion": r} for clip, r in vs["per_clip"].items()})["champion"]
                # The source that ran in this report (the ledger's hash is in doc["champion"]).
                vs["champion_sha256"] = self.candidates.get(vs["champion"], {}).get("sha256")
            outcomes = [t["outcome"] for t in cand["tests"].values()]
            cand["summary"] = {o: outcomes.count(o) for o in sorted(set(outcomes))}
            cand["passed_all"] = bool(outcomes) and all(o == "passed" for o in outcomes)
        outcomes = [t["outcome"] for t in self.tests.values()]
        return {
            "schema_version": SCHEMA_VERSION,
            "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": machine_info(),
            "versions": versions(),
            "git": git_info(root),
            "settings": self.settings,
            "clips": self.clips,
            "anchors": self.anchors,
            "champion": self.champion,
            "candidates": self.candidates,
            "tests": self.tests,
            "summary": {o: outcomes.count(o) for o in sorted(set(outcomes))},
        }

    def write(self, report_dir: Path, *, root: Path, enrich=None) -> Path:
        """Write the document (after `enrich(doc)`, e.g. adoption verdicts) as run-*.json and latest.json."""
        doc = self.document(root)
        if enrich is not None:
            enrich(doc)
        self.last_document = doc
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
        path = report_dir / f"run-{stamp}-{os.getpid()}.json"
        write_json_atomic(path, doc)
        write_json_atomic(report_dir / "latest.json", doc)
        return path


def overall_bd(per_clip: dict[str, dict[str, dict[str, dict]]]) -> dict[str, dict[str, dict]]:
    """Mean BD-rate over clips per anchor and metric, of comparable clips only; the others listed."""
    out: dict[str, dict[str, dict]] = {}
    for clip, anchors in sorted(per_clip.items()):
        for anchor, metrics in anchors.items():
            for metric, result in metrics.items():
                slot = out.setdefault(anchor, {}).setdefault(
                    metric, {"bd_rate": None, "clips": [], "excluded": {}, "values": {}}
                )
                if result.get("comparable") and result.get("bd_rate") is not None:
                    slot["values"][clip] = result["bd_rate"]
                    slot["clips"].append(clip)
                else:
                    slot["excluded"][clip] = result.get("warning") or "not comparable"
    for metrics in out.values():
        for slot in metrics.values():
            values = list(slot["values"].values())
            slot["bd_rate"] = sum(values) / len(values) if values else None
            slot["worst_clip"] = max(slot["values"], key=slot["values"].get) if values else None
    return out
