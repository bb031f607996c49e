"""Clip sets: the packaged default clips, the shared folder, manifests downloaded and verified."""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from harness.clips import Clip, ClipStore, download_clip, load_manifest, resolve_clip_set
from harness.errors import ClipError, ConfigError
from harness.video import Video, probe_video, read_video
from tests.conftest import REPO, synthetic, write_clip

CONFIG = REPO / "fixtures" / "clipsets.toml"


def test_default_set_is_three_real_clips_from_the_wheel():
    name, clips = resolve_clip_set("default", config=CONFIG, root=REPO)
    assert name == "default"
    sizes = {c.name: (probe_video(c.path).width, probe_video(c.path).height) for c in clips}
    assert sizes == {"bigbuckbunny": (1280, 720), "bikes": (640, 272), "carphone": (176, 144)}
    assert all("site-packages" in str(c.path) for c in clips)


def test_shared_set_lists_the_eight_bit_development_clips(shared_fixtures):
    _, clips = resolve_clip_set("shared", config=CONFIG, root=REPO)
    names = {c.name for c in clips}
    assert "derf_foreman_352x288_300f" in names and "svt_park_joy_160x90_10f" in names
    assert len(clips) == 13
    assert not any("10bit" in str(c.path) for c in clips)


def test_folder_and_unknown_names(tmp_path, shared_fixtures):
    shutil.copy(shared_fixtures / "svt_park_joy_160x90_10f.y4m", tmp_path / "park.y4m")
    (tmp_path / "readme.txt").write_text("not a clip")
    name, clips = resolve_clip_set(str(tmp_path), config=CONFIG, root=REPO)
    assert [c.name for c in clips] == ["park"]
    with pytest.raises(ClipError, match=r"neither a clip set \(default, shared, standard\)"):
        resolve_clip_set("nonesuch", config=CONFIG, root=REPO)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ClipError, match="holds no video files"):
        resolve_clip_set(str(empty), config=CONFIG, root=REPO)


class _Server:
    """A file server on 127.0.0.1 that counts requests."""

    def __init__(self, root: Path) -> None:
        self.requests: list[str] = []
        outer = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(root), **kwargs)

            def do_GET(self):
                outer.requests.append(self.path)
                super().do_GET()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(tmp_path, shared_fixtures):
    root = tmp_path / "www"
    root.mkdir()
    shutil.copy(shared_fixtures / "svt_park_joy_160x90_10f.y4m", root / "park.y4m")
    srv = _Server(root)
    yield srv, root
    srv.close()


def _manifest(tmp_path: Path, url: str, sha: str, extra: str = "") -> Path:
    path = tmp_path / "held_out.toml"
    path.write_text(f'[[clip]]\nname = "park"\nurl = "{url}"\nsha256 = "{sha}"\n{extra}')
    return path


def test_manifest_downloads_once_and_verifies(tmp_path, server):
    srv, root = server
    sha = hashlib.sha256((root / "park.y4m").read_bytes()).hexdigest()
    manifest = _manifest(tmp_path, f"{srv.url}/park.y4m", sha, 'frames = 4\nfps = "50"\n')
    cache = tmp_path / "cache"
    name, clips = resolve_clip_set(str(manifest), config=CONFIG, root=REPO, cache_dir=cache)
    assert name == "held_out" and clips[0].frames == 4 and clips[0].sha256 == sha
    assert clips[0].path.read_bytes() == (root / "park.y4m").read_bytes()
    resolve_clip_set(str(manifest), config=CONFIG, root=REPO, cache_dir=cache)
    assert srv.requests == ["/park.y4m"]  # the second run used the verified cache
    # A corrupted cache entry is noticed and fetched again.
    clips[0].path.write_bytes(b"garbage")
    resolve_clip_set(str(manifest), config=CONFIG, root=REPO, cache_dir=cache)
    assert len(srv.requests) == 2 and hashlib.sha256(clips[0].path.read_bytes()).hexdigest() == sha


def test_manifest_sha_mismatch_and_network_failures(tmp_path, server):
    srv, _ = server
    cache = tmp_path / "cache"
    bad = _manifest(tmp_path, f"{srv.url}/park.y4m", "0" * 64)
    with pytest.raises(ClipError, match="sha256 .* but the manifest says 0000"):
        resolve_clip_set(str(bad), config=CONFIG, root=REPO, cache_dir=cache)
    assert not any(p.is_file() for p in cache.rglob("*"))  # nothing half-written is left
    missing = _manifest(tmp_path, f"{srv.url}/nope.y4m", "0" * 64)
    with pytest.raises(ClipError, match="cannot download clip 'park'.*404"):
        resolve_clip_set(str(missing), config=CONFIG, root=REPO, cache_dir=cache)
    port = srv.httpd.server_address[1]
    srv.close()
    down = _manifest(tmp_path, f"http://127.0.0.1:{port}/park.y4m", "0" * 64)
    with pytest.raises(ClipError, match="cannot download clip 'park'"):
        download_clip(load_manifest(down)[0], cache, timeout_s=5)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "no \\[\\[clip\\]\\] entries"),
        ('[[clip]]\nname = "a"\n', "lacks url, sha256"),
        ('[[clip]]\nname = "a"\nurl = "http://x/a.mkv"\nsha256 = "abc"\n', "not 64 hex digits"),
        ("[[clip]\n", "cannot read clip manifest"),
        (f'[[clip]]\nname = "a"\nurl = "u"\nsha256 = "{"a" * 64}"\nfps = "x"\n', "bad fps"),
    ],
)
def test_malformed_manifests_name_the_problem(tmp_path, text, error):
    path = tmp_path / "m.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=error):
        load_manifest(path)


def test_store_decodes_each_clip_once(tmp_path, shared_fixtures):
    _, clips = resolve_clip_set("shared", config=CONFIG, root=REPO)
    clip = next(c for c in clips if c.name == "derf_bus_352x288_17f")
    store = ClipStore()
    first = store.get(clip, 5)
    assert store.get(clip, 5) is first
    assert first.video.frames == 5
    raw = first.sealed.read_bytes()
    assert first.sealed.size == len(raw) == 5 * (352 * 288 + 2 * 176 * 144) + raw.index(b"\n", 6) + 1
    assert os.listdir(tmp_path) == [], "the store writes no file"


def _saved(video: Video) -> bytes:
    buf = io.BytesIO()
    video.write_to(buf)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("name", "max_frames", "clip_frames"),
    [
        ("derf_foreman_352x288_300f.mkv", 60, None),  # the container's duration says 51 frames
        ("mdn_flower_960x540_150f.mp4", None, 8),  # the clip set's frame count is the limit
        ("cisco_men_whisper_640x320_9f.mkv", 50, None),  # fewer frames than the limit
    ],
)
def test_store_raw_file_is_read_video_frame_for_frame(tmp_path, shared_fixtures, name, max_frames, clip_frames):
    """The store decodes straight into its raw file; that file is what read_video returns, saved."""
    clip = Clip(name="c", path=shared_fixtures / name, frames=clip_frames)
    limit = min(x for x in (max_frames, clip_frames) if x)
    want, want_info = read_video(clip.path, max_frames=limit)
    got = ClipStore().get(clip, max_frames)
    assert isinstance(got.video.y, np.memmap), "the store's planes are not the sealed file's pages"
    assert got.info == want_info
    with got.sealed.open() as src:
        assert got.video.sha256() == want.sha256() == Video.read_from(src).sha256()
    assert got.sealed.read_bytes() == _saved(want)
    assert got.video.frames == want.frames
    for i in range(want.frames):
        for a, b in zip(got.video.frame(i), want.frame(i)):
            np.testing.assert_array_equal(a, b)


def test_store_odd_size_synthetic_clip(tmp_path):
    src = synthetic(67, 33, frames=7)
    path = tmp_path / "odd.mkv"
    write_clip(path, src, codec="ffv1")
    got = ClipStore().get(Clip(name="odd", path=path), None)
    assert got.sealed.read_bytes() == _saved(src) == _saved(read_video(path)[0])
    assert got.video.sha256() == src.sha256()


def test_store_corrupt_or_truncated_clip_is_a_clip_error_and_leaves_no_file(tmp_path, shared_fixtures):
    cut = tmp_path / "cut.mkv"
    cut.write_bytes((shared_fixtures / "derf_bus_352x288_17f.mkv").read_bytes()[:600])
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(5000))
    store = ClipStore()
    before = _memfds()
    for path in (cut, junk, shared_fixtures / "10bit" / "netflix_sparks_480x270_5f_10bit.mkv"):
        with pytest.raises(ClipError, match=path.name):
            store.get(Clip(name=path.stem, path=path), 5)
        assert _memfds() == before, f"{path.name} left an in-memory file open"


def _memfds() -> list[str]:
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("/memfd:"):
                found.append(fd)
        except OSError:
            pass
    return sorted(found)


def test_store_source_is_sealed_against_every_write(shared_fixtures):
    """The clip every encoder receives and the parent measures against cannot be changed by anyone,
    even by a process of the same uid that reopens the handed-over descriptor for writing."""
    import mmap

    from harness.sealed import is_sealed

    path = shared_fixtures / "derf_bus_352x288_17f.mkv"
    got = ClipStore().get(Clip(name="bus", path=path), 3)
    assert is_sealed(got.sealed.fd)
    before = got.sealed.read_bytes()
    with got.sealed.open() as handed:
        fd = os.open(f"/proc/self/fd/{handed.fileno()}", os.O_RDWR)  # the reopen succeeds; no write does
        try:
            for attempt in (
                lambda: os.pwrite(fd, b"\x80" * 64, 100),
                lambda: os.ftruncate(fd, 10),
                lambda: os.ftruncate(fd, len(before) * 2),
                lambda: mmap.mmap(fd, 0, mmap.MAP_SHARED),
                lambda: os.fchmod(fd, 0o666) or os.pwrite(fd, b"x", 0),
            ):
                with pytest.raises(PermissionError):
                    attempt()
        finally:
            os.close(fd)
    assert got.sealed.read_bytes() == before
    assert got.video.sha256() == read_video(path, max_frames=3)[0].sha256()
