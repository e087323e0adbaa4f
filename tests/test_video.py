"""Video fusion: frame-exact sizes, frame count, colour, atomic output and bad streams."""

from __future__ import annotations

import gc
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

ff = pytest.importorskip("imageio_ffmpeg")

import litefuse
from litefuse.errors import InputError, OutputError
from litefuse.io import OnceWarning
from litefuse.video import fuse_video, read_video


def write_video(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    h, w = frames[0].shape[:2]
    pix = "yuv420p" if h % 2 == 0 and w % 2 == 0 else "yuv444p"
    writer = ff.write_frames(str(path), (w, h), fps=fps, codec="libx264", pix_fmt_out=pix, macro_block_size=1,
                             output_params=["-crf", "0"], ffmpeg_log_level="error")
    writer.send(None)
    for f in frames:
        f = np.repeat(f[..., None], 3, -1) if f.ndim == 2 else f
        writer.send(np.ascontiguousarray(f, dtype=np.uint8).tobytes())
    writer.close()
    return path


def scene(n: int, h: int, w: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """A warm square moving over a dark IR background; a colour gradient visible."""
    ir, vi = [], []
    yy, xx = np.mgrid[0:h, 0:w]
    for t in range(n):
        a = np.full((h, w), 30, np.uint8)
        a[(abs(yy - h // 2) < 4) & (abs(xx - 6 - 3 * t) < 4)] = 230
        ir.append(a)
        vi.append(np.stack([xx * 200 // w + 20, yy * 200 // h + 20, np.full((h, w), 90)], -1).astype(np.uint8))
    return ir, vi


@pytest.fixture()
def pair(tmp_path):
    ir, vi = scene(6, 36, 50)
    return write_video(tmp_path / "ir.mp4", ir), write_video(tmp_path / "vi.mp4", vi)


def test_fused_video_has_every_frame_at_the_input_size_with_max_semantics(pair, tmp_path):
    out = tmp_path / "out" / "fused.mp4"
    report = fuse_video(*pair, out, litefuse.Fuser("max"))
    assert (report.frames, report.size, report.fps) == (6, (50, 36), 10.0)
    meta, frames = read_video(out)
    frames = list(frames)
    assert meta["size"] == (50, 36) and len(frames) == 6
    # the warm square of frame t is in the fused frame t (max keeps it), the colour survives elsewhere
    ir, _ = scene(6, 36, 50)
    for t, f in enumerate(frames):
        y = f.mean(-1)
        hot = ir[t] > 128
        assert y[hot].mean() > 0.8 and y[~hot].mean() < 0.6
    assert np.ptp(frames[0][..., 0] - frames[0][..., 2]) > 0.3  # colour, not grey
    assert [p.name for p in out.parent.iterdir()] == ["fused.mp4"]  # no temporary left


def test_batched_pipelined_video_equals_one_frame_at_a_time(pair, tmp_path, one_thread):
    """6 frames in batches of 4 (a short last batch) through a network give the frames of
    batch 1, and a failing decode mid-stream still leaves nothing behind."""
    fuser = litefuse.Fuser("aenetv2-ivif")
    one = fuse_video(*pair, tmp_path / "one.mp4", fuser)
    three = fuse_video(*pair, tmp_path / "three.mp4", fuser, batch_size=4)
    assert one.frames == three.frames == 6
    a, b = (np.stack(list(read_video(r.path)[1])) for r in (one, three))
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1  # float rounding across a batch, then 8-bit
    with pytest.raises(litefuse.errors.OptionError):
        fuse_video(*pair, tmp_path / "bad.mp4", fuser, batch_size=0)


def test_odd_sizes_come_back_exactly(tmp_path):
    ir, vi = scene(3, 35, 49)
    a, b = write_video(tmp_path / "a.mkv", ir), write_video(tmp_path / "b.mkv", vi)
    report = fuse_video(a, b, tmp_path / "f.mkv", litefuse.Fuser("mean"), grey=True)
    assert report.size == (49, 35) and read_video(tmp_path / "f.mkv")[0]["size"] == (49, 35)


def test_bad_streams_name_the_file_and_leave_nothing(pair, tmp_path):
    ir_path, _ = pair
    short = write_video(tmp_path / "short.mp4", scene(4, 36, 50)[1])
    out = tmp_path / "o" / "f.mp4"
    with pytest.raises(InputError, match="short.mp4.*frame counts differ"):
        fuse_video(ir_path, short, out, litefuse.Fuser("max"))
    assert not out.parent.exists() or list(out.parent.iterdir()) == []
    other = write_video(tmp_path / "big.mp4", scene(6, 40, 50)[1])
    with pytest.raises(InputError, match="big.mp4.*size mismatch"):
        fuse_video(ir_path, other, out, litefuse.Fuser("max"))
    with pytest.warns(UserWarning, match="big.mp4: resampled from 50×40 to 50×36, which changes its aspect ratio"):
        assert fuse_video(ir_path, other, out, litefuse.Fuser("max"), resize_vi=True).frames == 6
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 10)
    with pytest.raises(InputError, match="junk.mp4.*not a readable video"):
        fuse_video(ir_path, junk, tmp_path / "g.mp4", litefuse.Fuser("max"))
    with pytest.raises(OutputError, match="exists"):
        fuse_video(*pair, out, litefuse.Fuser("max"))
    with pytest.raises(OutputError, match="one of the inputs"):
        fuse_video(*pair, ir_path, litefuse.Fuser("max"), overwrite=True)


def test_cli_fuses_a_video_pair_and_reports_errors_in_one_line(pair, tmp_path):
    cmd = [sys.executable, "-m", "litefuse", "fuse", "--ir", str(pair[0]), "--vi", str(pair[1]), "-m", "max"]
    done = subprocess.run([*cmd, "-o", str(tmp_path / "res.mp4")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "fused 6 frames" in done.stdout and (tmp_path / "res.mp4").is_file()
    bad = subprocess.run([*cmd[:-4], "--vi", str(tmp_path / "missing.mp4"), "-m", "max", "-o", str(tmp_path / "x.mp4")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "missing.mp4" in bad.stderr, bad.stderr


def test_shortest_fuses_up_to_the_shorter_stream_and_names_it(pair, tmp_path):
    ir_path, vi_path = pair
    short = write_video(tmp_path / "short.mp4", scene(4, 36, 50)[1])
    report = fuse_video(ir_path, short, tmp_path / "s.mp4", litefuse.Fuser("max"), shortest=True)
    assert (report.frames, report.shorter) == (4, short)
    meta, frames = read_video(report.path)
    assert sum(1 for _ in frames) == 4
    same = fuse_video(ir_path, vi_path, tmp_path / "t.mp4", litefuse.Fuser("max"), shortest=True)
    assert (same.frames, same.shorter) == (6, None)  # equal lengths: nothing cut
    cmd = [sys.executable, "-m", "litefuse", "fuse", "--ir", str(short), "--vi", str(vi_path), "-m", "max"]
    bad = subprocess.run([*cmd, "-o", str(tmp_path / "u.mp4")], capture_output=True, text=True)
    assert bad.returncode == 2 and "--shortest" in bad.stderr and not (tmp_path / "u.mp4").exists(), bad.stderr
    done = subprocess.run([*cmd, "--shortest", "-o", str(tmp_path / "u.mp4")], capture_output=True, text=True)
    assert done.returncode == 0 and "fused 4 frames" in done.stdout and "short.mp4 ended after 4 frames" in done.stderr, done.stderr


def test_streams_at_different_frame_rates_fuse_with_a_note(tmp_path):
    ir, vi = scene(6, 36, 50)
    a, b = write_video(tmp_path / "ir.mp4", ir, fps=10.0), write_video(tmp_path / "vi.mp4", vi, fps=25.0)
    with pytest.warns(UserWarning, match=r"vi.mp4 runs at 25 fps, ir.mp4 at 10.*paired by index.*36.0 s a minute"):
        report = fuse_video(a, b, tmp_path / "o.mp4", litefuse.Fuser("max"))
    assert report.frames == 6 and report.fps == 10.0
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        fuse_video(a, write_video(tmp_path / "vi10.mp4", vi, fps=10.0), tmp_path / "p.mp4", litefuse.Fuser("max"))
    # 5 % apart is said too (2.9 s a minute); the threshold is 1 %
    with pytest.warns(UserWarning, match=r"vi105.mp4 runs at 10.5 fps, ir.mp4 at 10.*2.9 s a minute"):
        fuse_video(a, write_video(tmp_path / "vi105.mp4", vi, fps=10.5), tmp_path / "q.mp4", litefuse.Fuser("max"))


def test_fuse_video_takes_a_method_name(pair, tmp_path):
    report = fuse_video(*pair, tmp_path / "o.mp4", "max")
    assert report.frames == 6 and report.path.is_file()


def write_grey16(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    """A lossless 16-bit grey stream (FFV1 gray16le), as radiometric thermal cameras record."""
    h, w = frames[0].shape
    cmd = [ff.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "gray16le", "-s", f"{w}x{h}",
           "-r", str(fps), "-i", "-", "-c:v", "ffv1", str(path)]
    subprocess.run(cmd, input=np.stack(frames).astype("<u2").tobytes(), check=True)
    return path


def test_a_16_bit_infrared_stream_is_read_at_its_peak(tmp_path):
    """12-bit thermal data in a 16-bit stream: decoded as 16 bits (it was cut to 8, near black)
    and scaled by --ir-norm as 16-bit images are."""
    from litefuse.video import high_bit_depth

    ir8, vi = scene(4, 36, 50)
    ir12 = [a.astype(np.uint16) * 16 for a in ir8]  # the same scene as 12-bit levels (peak 4080)
    write_grey16(tmp_path / "ir16.mkv", ir12)
    vi_path = write_video(tmp_path / "vi.mp4", vi)
    meta, frames = read_video(tmp_path / "ir16.mkv", grey16=True)
    assert high_bit_depth(meta) and all(np.array_equal(f, a) for f, a in zip(frames, ir12))
    report = fuse_video(tmp_path / "ir16.mkv", vi_path, tmp_path / "a.mp4", "max", ir_norm=4080)
    assert report.frames == 4
    scaled = list(read_video(tmp_path / "a.mp4")[1])
    with pytest.warns(OnceWarning, match="12-bit data"):  # without --ir-norm: said
        plain = list(read_video(fuse_video(tmp_path / "ir16.mkv", vi_path, tmp_path / "b.mp4", "max").path)[1])
    eight = fuse_video(write_video(tmp_path / "ir8.mp4", ir8), vi_path, tmp_path / "c8.mp4", "max")
    want = list(read_video(eight.path)[1])  # the same scene from an 8-bit stream
    hot = (slice(16, 21), slice(4, 9))  # frame 0's warm square
    assert np.abs(scaled[0] - want[0]).mean() < 0.01
    assert want[0][hot].mean() - plain[0][hot].mean() > 0.2  # / 65535: the square nearly vanished
    with pytest.raises(InputError, match="8-bit video.*sensor peak"):
        fuse_video(vi_path, vi_path, tmp_path / "c.mp4", "max", ir_norm=4095)
    assert not (tmp_path / "c.mp4").exists()


def test_ab_videos_keep_the_colour_of_both_streams(tmp_path):
    """--task mef on two videos: frame for frame what the image API gives (A was cut to grey)."""
    _, vi = scene(3, 36, 50)
    a = write_video(tmp_path / "a.mp4", vi)
    b = write_video(tmp_path / "b.mp4", [np.full_like(f, 128) for f in vi])  # a grey second exposure
    fuser = litefuse.Fuser("max", task="mef")
    fuse_video(a, b, tmp_path / "ab.mp4", fuser)
    got = list(read_video(tmp_path / "ab.mp4")[1])
    a_frames, b_frames = list(read_video(a)[1]), list(read_video(b)[1])
    for g, fa, fb in zip(got, a_frames, b_frames):
        want = fuser.fuse_images(fa, fb)
        assert want.ndim == 3 and np.abs(want[..., 0] - want[..., 1]).max() > 0.3  # colour
        assert np.abs(g - want).mean() < 0.02  # to the codec's error


def test_tiny_frames_and_zero_frames_are_refused_up_front(pair, tmp_path):
    from litefuse.errors import OptionError

    tiny = write_video(tmp_path / "tiny.mp4", [np.full((6, 6), 100, np.uint8)] * 2)
    with pytest.raises(InputError, match=r"tiny.mp4: frames are 6×6 pixels; at least 8×8"):
        fuse_video(tiny, tiny, tmp_path / "t.mp4", "max")
    with pytest.raises(OptionError, match="max_frames must be a whole number of at least 1"):
        fuse_video(*pair, tmp_path / "z.mp4", "max", max_frames=0)
    for bad in (2.5, "2", True, 0):  # 2.5 never filled a batch: the whole video went through in one call
        with pytest.raises(OptionError, match=f"batch_size must be a whole number of at least 1 \\(got {bad!r}\\)"):
            fuse_video(*pair, tmp_path / "z.mp4", "max", batch_size=bad)
    assert not (tmp_path / "t.mp4").exists() and not (tmp_path / "z.mp4").exists()


def _remux(src: Path, dst: Path, *args: str) -> Path:
    """``src`` copied into ``dst`` by the ffmpeg binary, with extra input ``args`` (metadata, a second input)."""
    subprocess.run([ff.get_ffmpeg_exe(), "-y", "-loglevel", "error", *args, "-i", str(src), "-c", "copy", str(dst)],
                   check=True)
    return dst


def test_a_stream_turned_by_rotation_metadata_is_named_not_sent_to_resize_vi(pair, tmp_path):
    ir, vi = pair
    turned = _remux(vi, tmp_path / "turned.mp4", "-display_rotation", "90")
    with pytest.raises(InputError, match=r"turned.mp4 is rotated by display-rotation metadata") as caught:
        fuse_video(ir, turned, tmp_path / "r.mp4", "max")
    assert "--resize-vi would squash" in str(caught.value) and not (tmp_path / "r.mp4").exists()
    # two streams turned alike fuse, without imageio-ffmpeg's log line about the turned frames
    both = _remux(ir, tmp_path / "turned_ir.mp4", "-display_rotation", "90")
    cmd = [sys.executable, "-m", "litefuse", "fuse", "--ir", str(both), "--vi", str(turned), "-m", "max", "-o", str(tmp_path / "t.mp4")]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0 and "fused 6 frames" in done.stdout, done.stderr
    assert "frame size" not in done.stderr, done.stderr


def test_progress_is_told_the_frame_count_before_decoding(pair, tmp_path):
    told = []

    def progress(items, total):
        told.append(total)
        return items

    fuse_video(*pair, tmp_path / "p.mp4", "max", progress=progress)
    assert told == [6]  # 0.6 s at 10 fps: an estimate from the duration, not "?"


def test_an_audio_track_that_is_not_copied_is_said(pair, tmp_path):
    ir, vi = pair
    with_sound = tmp_path / "sound.mp4"
    subprocess.run([ff.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-i", str(vi), "-f", "lavfi", "-i", "sine=d=0.6",
                    "-c:v", "copy", "-c:a", "aac", "-shortest", str(with_sound)], check=True)
    with pytest.warns(UserWarning, match=r"audio of sound.mp4 is not copied"):
        report = fuse_video(ir, with_sound, tmp_path / "a.mp4", "max")
    assert report.frames == 6


def test_a_truncated_stream_is_said_to_be_damaged_not_just_shorter(tmp_path):
    """A cut file read as a short stream: "frame counts differ" sent the user looking for a
    length mismatch, and --shortest fused what was readable without a word."""
    ir, vi = scene(30, 36, 50)
    rng = np.random.default_rng(0)  # noise: frames of some size, so half the file is half the stream
    vi = [np.clip(v.astype(int) + rng.integers(0, 60, v.shape), 0, 255).astype(np.uint8) for v in vi]
    ir_path, full = write_video(tmp_path / "ir.mp4", ir), write_video(tmp_path / "vi.mkv", vi)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(InputError, match=r"cut.mkv: stream ends after \d+ frames .*header gives about 30 frames: a truncated or damaged"):
        fuse_video(ir_path, cut, tmp_path / "o.mp4", litefuse.Fuser("max"))
    with pytest.warns(UserWarning, match="cut.mkv: the stream ends after .*truncated or damaged"):
        report = fuse_video(ir_path, cut, tmp_path / "o.mp4", litefuse.Fuser("max"), shortest=True)
    assert 0 < report.frames < 30 and report.shorter == cut


def test_ntsc_frame_rates_are_kept_exact():
    """ffmpeg reports 24000/1001 fps as "23.98": written back as 23.98 the output drifts 0.6 s an hour."""
    from fractions import Fraction

    from litefuse.video import frame_rate

    assert frame_rate(23.98) == Fraction(24000, 1001) and frame_rate(29.97) == Fraction(30000, 1001)
    assert frame_rate(59.94) == Fraction(60000, 1001)
    assert frame_rate(25.0) == 25 and frame_rate(12.5) == Fraction(25, 2) and frame_rate(30.0) == 30


def test_an_ab_video_pair_is_worded_as_a_b(pair, tmp_path, capsys):
    """--a/--b videos: messages name --a/--b and "A/B", not --ir/--vi or the internal task "ab"."""
    from litefuse.cli import main
    from litefuse.errors import OptionError

    image = tmp_path / "b.png"
    litefuse.save_image(image, np.full((36, 50), 0.5, np.float32))
    argv, sys.argv = sys.argv, ["litefuse", "fuse", "--a", str(pair[0]), "--b", str(image), "-m", "max", "-o", str(tmp_path / "x.mp4")]
    try:
        with pytest.raises(SystemExit) as stop:
            main()
    finally:
        sys.argv = argv
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "both --a and --b must be videos" in err and "--ir" not in err, err
    with pytest.raises(OptionError, match=r"infrared stream; A/B videos are read as they are") as refused:
        fuse_video(*pair, tmp_path / "y.mp4", litefuse.Fuser("max", task="ab"), ir_norm="minmax")
    assert "(ab)" not in str(refused.value)


def test_max_frames_fuses_exactly_that_many_and_the_progress_total_says_so(pair, tmp_path):
    """``max_frames=3`` of 6-frame streams writes 3 frames (not 4) and tells the progress
    display a total of 3, not the streams' 6."""
    totals = []

    def progress(items, total):
        totals.append(total)
        return items

    out = tmp_path / "three.mp4"
    report = fuse_video(*pair, out, litefuse.Fuser("max"), max_frames=3, progress=progress)
    assert report.frames == 3 and len(list(read_video(out)[1])) == 3
    assert totals == [3]


def test_an_odd_height_with_an_even_width_keeps_every_row(tmp_path):
    """4:2:0 chroma needs both sides even: a 50×35 video (even width, odd height) is written
    in 4:4:4 and comes back 50×35 with its frames, not cropped or refused."""
    ir, vi = scene(3, 35, 50)
    out = tmp_path / "odd.mp4"
    report = fuse_video(write_video(tmp_path / "ir.mp4", ir), write_video(tmp_path / "vi.mp4", vi), out,
                        litefuse.Fuser("max"))
    meta, frames = read_video(out)
    assert report.frames == 3 and meta["size"] == (50, 35) and len(list(frames)) == 3


@pytest.mark.skipif(sys.platform == "win32", reason="the stand-in encoder is a shell script")
@pytest.mark.parametrize("when", ["at the end", "at once"])
def test_an_encoder_that_fails_is_one_output_error_and_the_old_video_stays(tmp_path, monkeypatch, when):
    """ffmpeg failing (a full disk: at the trailer, or at the header while frames still come, which breaks
    the pipe) is an OutputError naming the output with the OS reason; nothing is published, an existing
    video under --overwrite stays whole, no temporary file is left. Before, the first gave an empty video
    and exit 0, the second a multi-line OSError (exit 3)."""
    ir, vi = scene(4, 120, 160)  # frames of 57 kB: the pipe's buffer fills and breaks when ffmpeg quits at once
    ir_path, vi_path = write_video(tmp_path / "ir.mp4", ir), write_video(tmp_path / "vi.mp4", vi)
    out = tmp_path / "out" / "fused.mp4"
    out.parent.mkdir()
    out.write_bytes(b"an earlier, good video")
    lines = {"at the end": "cat > /dev/null\necho '[out#0/mp4 @ 0x5] Error writing trailer: No space left on device' >&2\nexit 1",
             "at once": "echo '[out#0/mp4 @ 0x5] Could not write header (incorrect codec parameters ?): No space left on device' >&2\nexit 228"}
    fake = tmp_path / "ffmpeg"
    fake.write_text("#!/bin/sh\n" + lines[when] + "\n")
    fake.chmod(0o755)
    monkeypatch.setattr(ff, "get_ffmpeg_exe", lambda: str(fake))
    with pytest.raises(OutputError) as error:
        fuse_video(ir_path, vi_path, out, "max", overwrite=True)
    assert str(error.value) == f"{out}: cannot write (No space left on device)"
    assert out.read_bytes() == b"an earlier, good video" and [p.name for p in out.parent.iterdir()] == ["fused.mp4"]


def test_video_readers_leave_no_open_pipes(pair, tmp_path):
    """Every ffmpeg reader is closed with its pipes: after a fused video, a fully read one, an
    unreadable file and a size mismatch found after both streams opened (imageio-ffmpeg alone
    leaves the pipes of an exited ffmpeg to the garbage collector, a ResourceWarning each)."""
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"x" * 100)
    ir, _ = scene(3, 40, 50)
    taller = write_video(tmp_path / "taller.mp4", ir)
    gc.collect()  # earlier tests' garbage is not this test's
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert fuse_video(*pair, tmp_path / "a.mp4", "max").frames == 6
        assert len(list(read_video(tmp_path / "a.mp4")[1])) == 6
        for streams in ((bad, pair[1]), (pair[0], bad), (pair[0], taller)):
            with pytest.raises(InputError, match="not a readable video|size mismatch"):
                fuse_video(*streams, tmp_path / "b.mp4", "max")
        gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []
    assert not (tmp_path / "b.mp4").exists()


def test_a_failing_encoder_stops_the_decode_thread_before_the_readers_close(pair, tmp_path, monkeypatch):
    """The readers were closed on the way out while the decode thread was still inside one of them:
    'ValueError: generator already executing' in place of the encoder's OutputError (seen once in a
    full run). A slow reader makes the overlap certain."""
    import time

    import litefuse.video as video

    real = video.read_video

    def slow(path, **kw):
        meta, frames = real(path, **kw)

        def crawl():
            for f in frames:
                time.sleep(0.3)  # the decode thread sits here when the encoder fails
                yield f

        class Closing:  # closes as read_video's frames do: the generator itself
            def __init__(self):
                self.gen = crawl()

            def __iter__(self):
                return self

            def __next__(self):
                return next(self.gen)

            def close(self):
                self.gen.close()
                frames.close()

        return meta, Closing()

    monkeypatch.setattr(video, "read_video", slow)
    fake = tmp_path / "ffmpeg"
    fake.write_text("#!/bin/sh\necho 'Could not write header: No space left on device' >&2\nexit 228\n")
    fake.chmod(0o755)
    monkeypatch.setattr(ff, "get_ffmpeg_exe", lambda: str(fake))
    with pytest.raises(OutputError, match="cannot write"):
        fuse_video(*pair, tmp_path / "o.mp4", "max")
    assert not (tmp_path / "o.mp4").exists()
