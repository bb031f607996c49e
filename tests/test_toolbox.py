"""The toolbox per track (fixtures/toolbox.toml, harness/toolbox.py): one source, declared tracks, the guard.

The guard (an audit hook, which cannot be removed, and a seccomp filter) is tried in a fresh
interpreter per track: nothing here installs it in the test process. The sandboxed view itself
(only the toolbox's packages, no executable) is checked from inside in tests/test_sandbox.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from harness.candidate import CONTRACT_TEXT, discover_candidates
from harness.errors import ConfigError
from harness.results import CandidateResults
from harness.toolbox import TRACKS, library_codec_message, load_toolbox

REPO = Path(__file__).resolve().parents[1]


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_tracks_and_their_modules():
    box = load_toolbox()
    assert TRACKS == ("native", "open")
    assert box.modules("native") == ("numpy", "cv2", "zstandard", "torch")
    assert set(box.modules("open")) == {*box.modules("native"), "av"}
    assert "av" in box.library_codecs and {"imencode", "VideoWriter", "VideoCapture"} <= set(box.library_codecs["cv2"])
    with pytest.raises(ConfigError, match="unknown track 'fast'; the tracks are native, open"):
        box.modules("fast")


def test_a_malformed_toolbox_names_the_problem(tmp_path):
    bad = tmp_path / "toolbox.toml"
    bad.write_text('[tracks.native]\nmodules = ["numpy"]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"must declare exactly native, open"):
        load_toolbox(bad)
    bad.write_text('[tracks.native]\nmodules = ["numpy"]\n[tracks.open]\nmodules = ["numpy"]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"track native lists \['numpy'\] without a \[modules.NAME\] entry"):
        load_toolbox(bad)


def test_contract_readme_and_prompt_say_what_the_toolbox_says():
    box = load_toolbox()
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- contract:start -->\n```text\n(.*?)```\n<!-- contract:end -->", readme, re.DOTALL)
    assert block and block.group(1) == CONTRACT_TEXT
    for track in TRACKS:
        assert _flat(box.available_text(track)) in _flat(CONTRACT_TEXT)
    native = box.available_text("native")
    assert "torch" in native and "PyAV (av)" in native and "refused" in native
    from harness.evolve.prompt import ChampionView, PromptInputs, build_prompt

    champion = ChampionView(name="champ", source='"""A codec."""\n', source_sha256="ab" * 32, ledger_seq=1,
                            overall_vs_anchor={}, clips=[], scores_from="test")
    prompt = build_prompt(PromptInputs(contract=CONTRACT_TEXT, champion=champion, attempts=[]), char_budget=100_000)
    assert native in prompt.user and "no torch" not in prompt.user


def test_refused_import_lists_the_toolbox_and_says_how_to_install_a_missing_tool():
    box = load_toolbox()
    msg = box.import_message("scipy", "native")
    assert msg.startswith("No module named 'scipy': it is not in the native toolbox.")
    assert box.available_text("native") in msg
    assert "declare the open track" in box.import_message("av", "native")
    torch = box.catalogue["torch"]
    assert "pip install torch==2.13.0" in torch.install and "pip install -e '.[torch]'" in torch.install


def test_sandbox_entries_hold_only_the_tracks_packages():
    box = load_toolbox()
    native = {p.name for p in box.sandbox_entries("native")}
    opened = {p.name for p in box.sandbox_entries("open")}
    assert {"numpy", "numpy.libs", "cv2", "opencv_python_headless.libs", "zstandard"} <= native
    assert not {"av", "av.libs", "scipy", "PIL", "anthropic", "imageio_ffmpeg", "skvideo", "skimage"} & native
    assert {"av", "av.libs"} <= opened and native <= opened
    if "torch" in box.installed("native"):
        assert {"torch", "torchgen", "typing_extensions.py"} <= native


@pytest.mark.parametrize(
    ("declaration", "track", "problem"),
    [
        ("", "native", None),
        ('TRACK = "open"\n', "open", None),
        ('TRACK: str = "native"\n', "native", None),
        ("", "open", None),  # docstring line, below
        ('TRACK = "turbo"\n', "native", "the track declared by TRACK is 'turbo'; the valid tracks are 'native', 'open'"),
        ("TRACK = NAME\n", "native", "the track declared by TRACK is 'NAME'"),
    ],
    ids=["default", "attribute", "annotated", "docstring", "unknown", "not-a-literal"],
)
def test_a_candidate_declares_its_track(tmp_path, declaration, track, problem):
    doc = "Test codec.\n\nTrack: open\n" if track == "open" and not declaration else "Test codec.\n\nTrack: the vectors are coded"
    (tmp_path / "c.py").write_text(
        f'"""{doc}"""\n{declaration}\ndef encode(video, target_bitrate):\n    return b""\n\n'
        "def decode(bitstream):\n    return None\n",
        encoding="utf-8",
    )
    [cand] = discover_candidates(tmp_path)
    assert cand.track == track
    if problem is None:
        assert cand.problem is None
    else:
        assert cand.problem and problem in cand.problem


def test_reference_candidates_declare_their_tracks():
    found = {c.name: c for c in discover_candidates(REPO / "candidates")}
    assert found["x264_pyav"].track == "open" and found["dct_inter"].track == "native"


GUARD_SCRIPT = textwrap.dedent('''
    import importlib, io, json, os, sys
    from harness.toolbox import install_guard
    track = sys.argv[1]
    guard = install_guard(track, candidate_module="candidate_probe")
    out = {}

    def attempt(key, fn):
        try:
            out[key] = "ok: " + str(fn())[:120]
        except BaseException as err:
            out[key] = f"{type(err).__name__}: {err}"[:400]

    import numpy as np
    import cv2
    frame = np.zeros((16, 16), np.uint8)
    attempt("scipy", lambda: __import__("scipy"))
    attempt("PIL", lambda: importlib.import_module("PIL") and __import__("PIL"))
    attempt("imencode", lambda: cv2.imencode(".png", frame)[0])
    attempt("getattr", lambda: getattr(cv2, "im" + "write")("/tmp/x.webp", frame))
    attempt("resize", lambda: cv2.resize(frame, (8, 8)).shape)
    attempt("reload", lambda: importlib.reload(cv2))
    attempt("subprocess", lambda: __import__("subprocess").run(["/bin/sh", "-c", "true"]))
    attempt("system", lambda: os.system("true"))
    attempt("ctypes", lambda: __import__("ctypes").CDLL(None))
    attempt("zstandard", lambda: __import__("zstandard").ZstdCompressor().compress(b"x" * 100))
    attempt("kwdefaults", lambda: cv2.imencode.__kwdefaults__)
    attempt("gc", lambda: __import__("gc").get_referents(cv2.imencode))
    attempt("cells", lambda: sorted(type(c.cell_contents).__name__ for c in cv2.imencode.__closure__))
    if track == "open":
        import av
        attempt("codec_context", lambda: av.CodecContext.create("libx265", "w").name)
        def mux():
            buf = io.BytesIO()
            with av.open(buf, "w", format="mp4") as c:
                c.add_stream("libx264", rate=25)
            return "muxed"
        attempt("av_open", mux)
    else:
        attempt("av", lambda: __import__("av"))
    seccomp = [l.split()[1] for l in open("/proc/self/status") if l.startswith("Seccomp:")]
    out["seccomp"] = seccomp[0] if seccomp else None
    out["used"], out["refused"] = guard.used, guard.refused
    print("RESULT" + json.dumps(out))
''')


def _guarded(track: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-s", "-B", "-c", GUARD_SCRIPT, track], capture_output=True, text=True, timeout=120, check=False,
        cwd=REPO, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
    )
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")]
    assert line, proc.stdout[-2000:] + proc.stderr[-4000:]
    return json.loads(line[0][len("RESULT"):])


def test_the_native_guard_refuses_codecs_imports_executables_and_ctypes():
    got = _guarded("native")
    assert got["scipy"].startswith("ModuleNotFoundError: No module named 'scipy': it is not in the native toolbox")
    assert got["PIL"].startswith("ModuleNotFoundError: No module named 'PIL'")
    assert got["imencode"] == "LibraryCodecError: " + library_codec_message("cv2.imencode(.png)")
    assert got["getattr"] == "LibraryCodecError: " + library_codec_message("cv2.imwrite(.webp)")
    assert got["resize"] == "ok: (8, 8)", "a non-codec OpenCV function is a tool"
    assert got["reload"].startswith("PermissionError: reloading cv2 is refused: it would undo the library codec guard")
    assert got["subprocess"].startswith("PermissionError: running an executable (subprocess.Popen: '/bin/sh')")
    assert got["system"].startswith("PermissionError: running an executable (os.system")
    assert got["ctypes"].startswith("PermissionError: ctypes.dlopen(None) is refused")
    assert got["zstandard"].startswith("ok: ")
    # The wrapper's original is reachable only through audited routes, which the guard refuses.
    assert got["kwdefaults"].startswith("PermissionError: reading __kwdefaults__ of the library codec guard's wrapper")
    assert got["gc"].startswith("PermissionError: gc.get_referents is refused")
    assert got["cells"] == "ok: ['CodecGuard', 'str']", got["cells"]
    assert got["av"].startswith("ModuleNotFoundError: No module named 'av': PyAV (av) is a library codec")
    assert got["seccomp"] == "2", "execve is denied by a seccomp filter as well"
    assert got["refused"] == ["cv2.imencode(.png)", "cv2.imwrite(.webp)"] and got["used"] == []


def test_the_open_guard_records_each_library_codec():
    got = _guarded("open")
    assert got["imencode"] == "ok: True"
    assert got["codec_context"] == "ok: libx265" and got["av_open"] == "ok: muxed"
    assert got["subprocess"].startswith("PermissionError: running an executable")
    assert got["used"][:2] == ["cv2.imencode(.png)", "cv2.imwrite(.webp)"]
    assert "libx265 via av" in got["used"] and "libx264 via av" in got["used"]
    assert got["refused"] == []


def test_identical_to_an_anchor_is_flagged():
    frames = {"bitstream_sha256": "b" * 64, "decoded_sha256": "d" * 64}
    anchors = {"clip": {"x265": [{"qp": 32, "measurement": {"bitstream_sha256": "x" * 64, "decoded_sha256": "y" * 64}},
                                 {"qp": 27, "measurement": dict(frames)}]}}
    cand = CandidateResults(name="w", points={"clip/r2": {"clip": "clip", "rung": "r2", "measurement": dict(frames)}})
    assert cand.identical_to_anchors(anchors) == [
        "identical to the x265 anchor at r2 (clip, QP 27): same bitstream and decoded frames"
    ]
    other = CandidateResults(name="o", points={"clip/r2": {"clip": "clip", "rung": "r2", "measurement": {
        "bitstream_sha256": "c" * 64, "decoded_sha256": "y" * 64}}})
    assert other.identical_to_anchors(anchors) == ["identical to the x265 anchor at r2 (clip, QP 32): same decoded frames"]


def test_library_codecs_are_the_union_over_calls():
    cand = CandidateResults(
        name="w",
        check={"library_codecs": []},
        points={
            "a/r0": {"encode": {"library_codecs": ["libx264 via av"]}, "decode": {"library_codecs": ["h264 via av"]}},
            "a/r1": {"encode": {"library_codecs": ["libx264 via av"]}, "decode": None},
        },
    )
    assert cand.library_codecs == ["libx264 via av", "h264 via av"]
    assert cand.wraps == ["libx264", "h264"]


@pytest.mark.sandbox
@pytest.mark.parametrize(
    ("wrapper", "codecs"),
    [
        (REPO / "candidates" / "x264_pyav.py", ("libx264 via av", "h264 via av")),
        (REPO / "tests" / "data" / "wrappers" / "x265_pyav.py", ("libx265 via av", "hevc via av")),
    ],
    ids=["x264", "x265"],
)
def test_worker_reports_the_codec_a_wrapper_used_and_refuses_it_natively(tmp_path, wrapper, codecs):
    from harness.runner import Runner
    from harness.sandbox import Limits, Sandbox
    from harness.video import Video

    source = wrapper.read_text(encoding="utf-8")
    assert 'TRACK = "open"' in source
    (tmp_path / "open").mkdir()
    (tmp_path / "native").mkdir()
    (tmp_path / "open" / "wrap.py").write_text(source, encoding="utf-8")
    (tmp_path / "native" / "wrap.py").write_text(source.replace('TRACK = "open"', "TRACK = 'native'"), encoding="utf-8")
    runner = Runner(sandbox=Sandbox(mode="bwrap"), limits=Limits(wall_s=60, memory_bytes=4 << 30))
    y = np.full((2, 16, 16), 90, np.uint8)
    c = np.full((2, 8, 8), 128, np.uint8)
    video = Video(y, c, c.copy(), Fraction(25))
    [opened] = discover_candidates(tmp_path / "open")
    outcome, data = runner.encode(opened, video, 2e5)
    assert outcome.ok, outcome.details()
    assert outcome.library_codecs == codecs[:1]
    dec, decoded = runner.decode(opened, data)
    assert dec.ok and dec.library_codecs == codecs[1:], dec.details()
    assert decoded.y.shape == y.shape and abs(float(decoded.y.mean()) - 90) < 2
    [native] = discover_candidates(tmp_path / "native")
    check = runner.check(native)
    assert not check.ok and check.kind == "contract", check.details()
    assert "No module named 'av': PyAV (av) is a library codec; a native candidate's codec must be its own" in check.message


def test_code_compiled_under_a_toolbox_files_name_is_refused():
    """A frame's file name decides whether ctypes may be used: forging one (compile(src, numpy's
    path)) is refused, so the candidate cannot pass for numpy."""
    script = textwrap.dedent('''
        import numpy, os, sys
        from harness.toolbox import install_guard
        install_guard("native", candidate_module="candidate_probe")
        fake = os.path.join(os.path.dirname(numpy.__file__), "forged.py")
        try:
            exec(compile("import ctypes; ctypes.CDLL(None)", fake, "exec"))
            print("RESULT ran")
        except PermissionError as err:
            print("RESULT " + str(err))
        import torch  # the toolbox's own compiles and ctypes loads still work
        print("RESULT torch " + str(torch.zeros(2).sum().item()))
    ''')
    proc = subprocess.run(
        [sys.executable, "-s", "-B", "-c", script], capture_output=True, text=True, timeout=180, check=False,
        cwd=REPO, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
    )
    lines = [ln[len("RESULT "):] for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert lines and lines[0].startswith("compiling code under the name ") and "forged.py" in lines[0], proc.stderr[-3000:]
    if "torch" in load_toolbox().installed("native"):
        assert lines[1:] == ["torch 0.0"], proc.stderr[-3000:]


def test_reports_show_each_candidates_track_and_the_codecs_it_wraps():
    from harness.render.html import render_html
    from harness.render.markdown import render_markdown
    from harness.render.terminal import leaderboard_lines

    doc = json.loads((REPO / "tests" / "data" / "report_small.json").read_text(encoding="utf-8"))
    doc["candidates"]["x264_pyav"].update(track="open", library_codecs=["libx264 via av", "h264 via av"])
    doc["candidates"]["dct_inter"].update(track="native", library_codecs=[])
    terminal = "\n".join(leaderboard_lines(doc))
    assert "x264_pyav (open, wraps libx264, h264)" in terminal and "dct_inter (native)" in terminal
    assert "**x264\\_pyav** (open, wraps libx264, h264)" in render_markdown(doc)
    assert "open, wraps libx264, h264" in render_html(doc)
