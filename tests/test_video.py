"""Video: reading real files exactly (padding, odd sizes, full range), the raw format, validation,
and decoding straight into a raw file (`decode_to_raw`) exactly as `read_video` + `save` would."""

from __future__ import annotations

import io
import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import harness.rawfile as rawfile_module
import harness.video as video_module
from harness.errors import ClipError, VideoFormatError
from harness.rawfile import decode_to_raw
from harness.video import RAW_MAGIC, Video, probe_video, read_video
from tests.conftest import synthetic, write_clip


@pytest.mark.parametrize("size", [(67, 33), (200, 100), (176, 144), (1, 1), (1366, 16)])
def test_lossless_file_reads_back_exactly(tmp_path, size):
    """FFV1 is lossless, so any difference is a reader bug (line padding, PITFALLS 1)."""
    src = synthetic(*size, frames=3)
    path = tmp_path / "clip.mkv"
    write_clip(path, src, codec="ffv1")
    got, info = read_video(path)
    assert (got.width, got.height, got.frames) == size + (3,)
    assert got.u.shape == src.u.shape
    for a, b in ((got.y, src.y), (got.u, src.u), (got.v, src.v)):
        np.testing.assert_array_equal(a, b)
    assert got.fps == Fraction(25)
    assert got.sha256() == src.sha256()
    assert info.pix_fmt == "yuv420p"


def test_mp4_with_padded_lines_reads_exactly(tmp_path):
    """200x100 H.264 has Y line 208 / chroma 112 in PyAV; lossless x264 must read back exactly."""
    src = synthetic(200, 100, frames=4)
    path = tmp_path / "clip.mp4"
    write_clip(path, src, codec="libx264", options={"qp": "0", "preset": "ultrafast"})
    got, _ = read_video(path)
    np.testing.assert_array_equal(got.y, src.y)
    np.testing.assert_array_equal(got.v, src.v)


def test_full_range_keeps_samples_and_says_so(tmp_path):
    src = synthetic(64, 48, frames=2)
    path = tmp_path / "full.mkv"
    write_clip(path, src, codec="libx264", pix_fmt="yuvj420p", options={"qp": "0", "preset": "ultrafast"})
    got, info = read_video(path)
    assert info.color_range == "pc"
    assert info.pix_fmt == "yuvj420p"
    # Not rescaled to 16..235: the exact source samples, extremes included.
    np.testing.assert_array_equal(got.y, src.y)
    assert got.y.max() > 235


def test_raw_annexb_takes_rate_from_the_caller(tmp_path):
    src = synthetic(64, 48, frames=5, fps=Fraction(30000, 1001))
    path = tmp_path / "clip.264"
    write_clip(path, src, codec="libx264", options={"qp": "0", "preset": "ultrafast"}, fmt="h264")
    got, _ = read_video(path, fps=Fraction(30000, 1001))
    assert got.fps == Fraction(30000, 1001)
    assert got.frames == 5
    np.testing.assert_array_equal(got.y, src.y)


def test_real_clips_match_the_manifest(shared_fixtures):
    expect = {
        "cisco_men_whisper_640x320_9f.mkv": (640, 320, 9, Fraction(25)),
        "derf_foreman_352x288_300f.mkv": (352, 288, 300, Fraction(30000, 1001)),
        "svt_park_joy_160x90_10f.y4m": (160, 90, 10, Fraction(50)),
        "derf_stefan_352x288_2f.webm": (352, 288, 2, Fraction(30000, 1001)),
    }
    for name, (w, h, n, fps) in expect.items():
        video, _ = read_video(shared_fixtures / name)
        assert (video.width, video.height, video.frames, video.fps) == (w, h, n, fps), name
        assert video.u.shape == (n, (h + 1) // 2, (w + 1) // 2)
        # Real content, not a constant: a reader returning zeros or padding would fail this.
        assert 10 < video.y.std() < 100


def test_max_frames_reads_only_the_head(shared_fixtures):
    head, info = read_video(shared_fixtures / "derf_foreman_352x288_300f.mkv", max_frames=7)
    full, _ = read_video(shared_fixtures / "derf_foreman_352x288_300f.mkv", max_frames=20)
    assert head.frames == 7 and info.frames == 7
    np.testing.assert_array_equal(head.y, full.y[:7])


def test_ten_bit_is_refused_clearly(shared_fixtures):
    with pytest.raises(ClipError, match="10-bit"):
        read_video(shared_fixtures / "10bit" / "netflix_sparks_480x270_5f_10bit.mkv")


def test_corrupt_and_truncated_files_are_clear_errors(tmp_path, shared_fixtures):
    text = tmp_path / "notes.mkv"
    text.write_text("this is not a video\n" * 10)
    with pytest.raises(ClipError, match="notes.mkv"):
        read_video(text)
    truncated = tmp_path / "cut.mkv"
    truncated.write_bytes((shared_fixtures / "derf_bus_352x288_17f.mkv").read_bytes()[:600])
    with pytest.raises(ClipError, match="cut.mkv"):
        read_video(truncated)
    with pytest.raises(ClipError, match="does not exist"):
        read_video(tmp_path / "missing.mkv")


def test_probe_reads_header_only(shared_fixtures):
    info = probe_video(shared_fixtures / "cisco_flower_1280x720_60f.mkv")
    assert (info.width, info.height, info.codec) == (1280, 720, "ffv1")


def test_raw_format_round_trip_and_identity():
    video = synthetic(67, 33, frames=3)
    buf = io.BytesIO()
    video.write_to(buf)
    buf.seek(0)
    back = Video.read_from(buf)
    assert back.sha256() == video.sha256()
    np.testing.assert_array_equal(back.u, video.u)
    changed = Video(video.y.copy(), video.u, video.v, video.fps)
    changed.y[1, 2, 3] ^= 1
    assert changed.sha256() != video.sha256()
    assert Video(video.y, video.u, video.v, Fraction(24)).sha256() != video.sha256()


def test_raw_reader_checks_header_against_size():
    video = synthetic(16, 16, frames=2)
    buf = io.BytesIO()
    video.write_to(buf)
    data = buf.getvalue()
    with pytest.raises(VideoFormatError, match="bad magic"):
        Video.read_from(io.BytesIO(b"XXXX" + data[4:]))
    with pytest.raises(VideoFormatError, match="holds"):
        Video.read_from(io.BytesIO(data[:-1]))
    huge = data.replace(b'"frames": 2', b'"frames": 99999999')
    with pytest.raises(VideoFormatError, match="over the limit"):
        Video.read_from(io.BytesIO(huge), max_bytes=1 << 20)
    with pytest.raises(VideoFormatError, match="holds"):
        Video.read_from(io.BytesIO(huge))
    with pytest.raises(VideoFormatError, match="malformed header"):
        Video.read_from(io.BytesIO(b"HVID1\n{not json}\n"))


def test_video_validation_names_the_problem():
    y = np.zeros((2, 5, 7), np.uint8)
    u = np.zeros((2, 3, 4), np.uint8)
    with pytest.raises(VideoFormatError, match="float64 holding 70 NaN"):
        Video(np.full((2, 5, 7), np.nan), u, u, 25)
    with pytest.raises(VideoFormatError, match=r"plane u has shape \(2, 2, 4\), expected \(2, 3, 4\)"):
        Video(y, np.zeros((2, 2, 4), np.uint8), u, 25)
    with pytest.raises(VideoFormatError, match="frame rate"):
        Video(y, u, u, 0)
    with pytest.raises(VideoFormatError, match="numpy uint8 array"):
        Video([[1]], u, u, 25)
    assert Video(y, u, u, 25).fps == Fraction(25)


# ----------------------------------------------------------------------------- decode_to_raw


def _saved(video: Video) -> bytes:
    buf = io.BytesIO()
    video.write_to(buf)
    return buf.getvalue()


def _same_as_read_video(path: Path, out: Path, **kw) -> Path:
    """decode_to_raw's file is read_video's Video saved, byte for byte; named by its sha256; alone."""
    want, want_info = read_video(path, **kw)
    raw, info, sha = decode_to_raw(path, out, **kw)
    data = raw.read_bytes()
    assert data == _saved(want)
    assert sha == want.sha256() and raw == out / f"{sha}.hvid"
    assert info == want_info
    assert os.listdir(out) == [raw.name], "a temporary file was left behind"
    back = Video.load(raw, mmap=True)
    for i in range(want.frames):  # frame for frame, through the mapped file the store uses
        for a, b in zip(back.frame(i), want.frame(i)):
            np.testing.assert_array_equal(a, b)
    return raw


@pytest.mark.parametrize(
    ("name", "max_frames"),
    [
        ("cisco_men_whisper_640x320_9f.mkv", None),  # Matroska: no frame count, duration exact
        ("derf_foreman_352x288_300f.mkv", 70),  # Matroska whose duration says 51 frames: grows
        ("derf_foreman_352x288_300f.mkv", None),
        ("mdn_flower_960x540_150f.mp4", 12),  # MP4 with a frame count
        ("derf_stefan_352x288_2f.webm", None),
        ("svt_park_joy_160x90_10f.y4m", 30),  # fewer frames than asked for
    ],
)
def test_decode_to_raw_equals_read_video_on_real_clips(tmp_path, shared_fixtures, name, max_frames):
    _same_as_read_video(shared_fixtures / name, tmp_path, max_frames=max_frames)


@pytest.mark.parametrize("guess", [1, 2, 3, 5, 9, 100, 10**15])
@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv444p"])
def test_decode_to_raw_any_frame_count_guess_odd_size(tmp_path, monkeypatch, guess, pix_fmt):
    """A wrong guess of the frame count (too low: the file grows; too high: it shrinks) changes
    nothing in the file, for an odd size and with moves cut into chunks smaller than a plane
    (10**15: a hostile container's claim, capped to a sparse file of _GUESS_MAX_BYTES).
    yuv444p goes through libswscale to 4:2:0 in both readers."""
    src = synthetic(67, 33, frames=5)
    path = tmp_path / "clip.mkv"
    write_clip(path, src, codec="ffv1", pix_fmt=pix_fmt)
    monkeypatch.setattr(video_module._FrameSource, "expected_frames", lambda self: guess)
    monkeypatch.setattr(rawfile_module, "_MOVE_CHUNK", 700)
    out = tmp_path / "out"
    out.mkdir()
    raw = _same_as_read_video(path, out)
    if pix_fmt == "yuv420p":
        assert Video.load(raw).sha256() == src.sha256()


def test_decode_to_raw_keeps_full_range_and_takes_the_callers_rate(tmp_path):
    src = synthetic(64, 48, frames=3)
    full = tmp_path / "full.mkv"
    write_clip(full, src, codec="libx264", pix_fmt="yuvj420p", options={"qp": "0", "preset": "ultrafast"})
    annexb = tmp_path / "clip.264"
    write_clip(annexb, src, codec="libx264", options={"qp": "0", "preset": "ultrafast"}, fmt="h264")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    raw = _same_as_read_video(full, tmp_path / "a")
    assert Video.load(raw).y.max() > 235
    raw = _same_as_read_video(annexb, tmp_path / "b", fps=Fraction(30000, 1001))
    assert Video.load(raw).fps == Fraction(30000, 1001)


def _refused_alike(path: Path, out: Path, match: str, **kw) -> None:
    """read_video and decode_to_raw raise the same ClipError, and no file is left in `out`."""
    with pytest.raises(ClipError, match=match) as first:
        read_video(path, **kw)
    with pytest.raises(ClipError, match=match) as second:
        decode_to_raw(path, out, **kw)
    assert str(second.value) == str(first.value)
    assert os.listdir(out) == []


def test_decode_to_raw_refuses_what_read_video_refuses_and_leaves_nothing(tmp_path, shared_fixtures):
    out = tmp_path / "out"
    out.mkdir()
    text = tmp_path / "notes.mkv"
    text.write_text("this is not a video\n" * 10)
    _refused_alike(text, out, "notes.mkv")
    cut = tmp_path / "cut.mkv"
    cut.write_bytes((shared_fixtures / "derf_bus_352x288_17f.mkv").read_bytes()[:600])
    _refused_alike(cut, out, "cut.mkv")
    _refused_alike(shared_fixtures / "10bit" / "netflix_sparks_480x270_5f_10bit.mkv", out, "10-bit")
    _refused_alike(tmp_path / "missing.mkv", out, "does not exist")
    _refused_alike(shared_fixtures / "derf_bus_352x288_17f.mkv", out, "max_frames", max_frames=0)


def test_decode_to_raw_refuses_a_frame_size_change(tmp_path):
    """Two H.264 elementary streams of different sizes back to back: one stream, two sizes."""
    first, second = tmp_path / "a.264", tmp_path / "b.264"
    write_clip(first, synthetic(64, 48, frames=3), codec="libx264", options={"qp": "0"}, fmt="h264")
    write_clip(second, synthetic(48, 32, frames=3), codec="libx264", options={"qp": "0"}, fmt="h264")
    both = tmp_path / "both.264"
    both.write_bytes(first.read_bytes() + second.read_bytes())
    out = tmp_path / "out"
    out.mkdir()
    _refused_alike(both, out, "frame size changes", fps=Fraction(25))
    _same_as_read_video(both, out, fps=Fraction(25), max_frames=3)  # the head alone is fine


def test_decode_to_raw_damaged_file_midway_leaves_nothing(tmp_path, shared_fixtures):
    """Bytes overwritten in the middle: whatever the decoder makes of it, both readers agree."""
    data = bytearray((shared_fixtures / "derf_bus_352x288_17f.mkv").read_bytes())
    data[len(data) // 2 : len(data) // 2 + 4000] = bytes(4000)
    damaged = tmp_path / "damaged.mkv"
    damaged.write_bytes(bytes(data))
    out = tmp_path / "out"
    out.mkdir()
    try:
        read_video(damaged)
    except ClipError:
        _refused_alike(damaged, out, "damaged.mkv")
    else:
        _same_as_read_video(damaged, out)


def test_decode_to_raw_interrupted_leaves_nothing_and_never_a_valid_looking_file(tmp_path, monkeypatch):
    src = synthetic(40, 30, frames=6)
    path = tmp_path / "clip.mkv"
    write_clip(path, src, codec="ffv1")
    out = tmp_path / "out"
    out.mkdir()
    seen: list[bytes] = []
    append = rawfile_module._RawWriter.append

    def interrupted(self, *planes):
        if self.count == 4:
            tmp = [p for p in out.iterdir()]
            assert len(tmp) == 1 and tmp[0].name.endswith(".tmp")
            seen.append(tmp[0].read_bytes())  # what a SIGKILL now would leave behind
            raise KeyboardInterrupt
        append(self, *planes)

    monkeypatch.setattr(rawfile_module._RawWriter, "append", interrupted)
    with pytest.raises(KeyboardInterrupt):
        decode_to_raw(path, out)
    assert os.listdir(out) == []
    assert not seen[0].startswith(RAW_MAGIC)
    left = tmp_path / "left.hvid"
    left.write_bytes(seen[0])
    with pytest.raises(VideoFormatError, match="bad magic"):
        Video.load(left)


def test_decode_to_raw_keeps_a_file_already_there(tmp_path, shared_fixtures):
    path = shared_fixtures / "cisco_vt2people_320x192_9f.mkv"
    raw, _, sha = decode_to_raw(path, tmp_path, max_frames=4)
    inode = raw.stat().st_ino
    again, _, sha2 = decode_to_raw(path, tmp_path, max_frames=4)
    assert (again, sha2) == (raw, sha) and again.stat().st_ino == inode
    assert os.listdir(tmp_path) == [raw.name]
