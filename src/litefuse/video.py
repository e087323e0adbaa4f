"""Video fusion: two registered streams (infrared, visible) in, one fused video out.

Decoding and encoding go through ``imageio-ffmpeg`` (a pinned ffmpeg binary in a wheel; install
with ``pip install litefuse[video]``). Frames are fused one at a time with a loaded
:class:`~litefuse.api.Fuser`, so memory stays at one frame whatever the length.

- The infrared stream is reduced to its BT.601 luminance: after lossy YUV encoding a grey
  thermal video no longer has exactly identical RGB channels, so the image rule "three
  identical channels = grey" cannot be applied frame by frame. An infrared stream stored with
  more than 8 bits (``gray16le``, ``gray12le``, ``yuv420p10le``, ...: radiometric cameras) is
  decoded as 16-bit grey and scaled by ``ir_norm`` as images are (``range``: / 65535; a
  sensor's peak such as 4095; ``minmax``: per frame). A/B streams (``task`` mef, mff, ...)
  both keep their colour, as A/B images do.
- Both streams must have the same frame size (``resize_vi`` resamples the visible) and the same
  number of frames; a stream that ends early is an error naming it, unless ``shortest`` stops
  at the shorter one (cameras recording side by side often differ by a frame or two). The
  frame rate of the infrared stream is kept; streams whose rates differ by more than 1 % fuse
  with a warning (frames pair by index, so they drift apart in time).
- Output: H.264 (``libx264``, CRF 17) in ``.mp4``/``.mkv``/``.mov``/``.avi``; ``yuv420p`` when
  both sides are even, else ``yuv444p`` so odd sizes come back exactly. Written to a temporary
  file in the target folder and renamed at the end; on any error nothing is left behind.
- Sound is not carried over: an input's audio track is left out, with a warning.
"""

from __future__ import annotations

import errno
import logging
import os
import queue
import re
import subprocess
import tempfile
import threading
import traceback
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, TypeVar

import numpy as np

from ._checks import whole
from ._files import publish, temporary_beside
from .colour import rgb_to_ycbcr
from .errors import InputError, LitefuseError, OptionError, OutputError
from .io import MIN_SIDE, VIDEO_SUFFIXES, Norm, check_norm, check_output_path, to_float, writable_dir

if TYPE_CHECKING:
    from .api import Fuser

__all__ = ["VIDEO_SUFFIXES", "VideoReport", "is_video", "high_bit_depth", "read_video", "fuse_video"]

READ_SUFFIXES = VIDEO_SUFFIXES + (".webm", ".m4v", ".mpg", ".mpeg", ".wmv")


@dataclass(frozen=True)
class VideoReport:
    """What :func:`fuse_video` wrote."""

    path: Path
    frames: int
    fps: float
    size: tuple[int, int]  # (width, height)
    shorter: Path | None = None  # with ``shortest``: the stream that ended while the other had more


def is_video(path: str | Path) -> bool:
    """Whether ``path``'s suffix is a video container litefuse reads (``.mp4``, ``.mkv``, ``.webm``, ...)."""
    return Path(path).suffix.lower() in READ_SUFFIXES


def _ffmpeg():
    try:
        import imageio_ffmpeg
    except ModuleNotFoundError:
        raise LitefuseError("video needs imageio-ffmpeg: pip install 'litefuse[video]'") from None
    return imageio_ffmpeg


def frame_rate(fps: float) -> Fraction:
    """The exact frame rate behind ffmpeg's rounded report (``"23.98 fps"``): the NTSC rates
    ``N·1000/1001`` where within 0.01 of one (23.976, 29.97, 47.952, 59.94, 119.88), else the
    nearest fraction with a denominator up to 1001. A rounded 23.98 would drift 0.6 s an hour
    from the source's timing."""
    for n in (24, 30, 48, 60, 120):
        if abs(fps - n * 1000 / 1001) < 0.01:
            return Fraction(n * 1000, 1001)
    return Fraction(fps).limit_denominator(1001)


def _rotation_note(record: logging.LogRecord) -> bool:
    """Drops imageio-ffmpeg's log line about a stream turned by its rotation metadata ("frame size
    for reading ... is different from the source frame size"): litefuse reads the turned frames
    as ffmpeg gives them and names a rotated stream itself where it matters (a size mismatch)."""
    return "is different from the source frame size" not in record.getMessage()


def _open(path: Path, pix_fmt: str, bpp: int):
    logger = logging.getLogger("imageio_ffmpeg")
    if _rotation_note not in logger.filters:
        logger.addFilter(_rotation_note)
    gen = _ffmpeg().read_frames(str(path), pix_fmt=pix_fmt, bpp=bpp)
    try:
        meta = next(gen)
        return gen, _process(gen.gi_frame), meta
    except (OSError, RuntimeError, StopIteration) as exc:
        _end(gen, _process(*(frame for frame, _ in traceback.walk_tb(exc.__traceback__))))
        raise InputError(f"not a readable video ({str(exc).strip().splitlines()[-1] if str(exc).strip() else exc.__class__.__name__})", path) from None


def high_bit_depth(meta: dict) -> bool:
    """Whether a stream stores more than 8 bits a sample (``gray16le``, ``yuv420p10le``, ...)."""
    fmt = str(meta.get("pix_fmt", "")).split("(")[0]
    return re.search(r"(9|10|12|14|16)(le|be)$", fmt) is not None or fmt.startswith(("gray16", "gray12", "gray10"))


def read_video(path: str | Path, *, grey16: bool = False) -> tuple[dict, Iterator[np.ndarray]]:
    """Open a video: its metadata (``size`` = (W, H), ``fps``, ``pix_fmt``) and an iterator of
    float RGB frames in [0, 1]. With ``grey16``, a stream of more than 8 bits a sample
    (:func:`high_bit_depth`) yields its luminance as ``uint16`` H×W frames instead, values as stored."""
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found", path)
    if path.stat().st_size == 0:
        raise InputError("empty file (0 bytes)", path)
    gen, proc, meta = _open(path, "rgb24", 3)
    sixteen = grey16 and high_bit_depth(meta)
    if sixteen:
        _end(gen, proc)
        gen, proc, meta = _open(path, "gray16le", 2)
    meta["grey16"] = sixteen
    w, h = meta["size"]

    def frames() -> Iterator[np.ndarray]:
        try:
            for raw in gen:
                if sixteen:
                    yield np.frombuffer(raw, "<u2").reshape(h, w).astype(np.uint16)
                else:
                    yield np.frombuffer(raw, np.uint8).reshape(h, w, 3).astype(np.float32) / 255.0
        except (OSError, RuntimeError) as exc:
            raise InputError(f"video decoding failed ({exc.__class__.__name__})", path) from None
        finally:
            _end(gen, proc)

    return meta, _Frames(gen, proc, frames())


class _Frames(Iterator[np.ndarray]):
    """A video's decoded frames; :meth:`close` ends its ffmpeg reader (process and pipes) even
    before the first frame is taken, which closing a generator that never started does not."""

    def __init__(self, reader: Iterator, proc: subprocess.Popen | None, frames: Iterator[np.ndarray]) -> None:
        self._reader, self._proc, self._frames = reader, proc, frames

    def __next__(self) -> np.ndarray:
        return next(self._frames)

    def close(self) -> None:
        self._frames.close()
        _end(self._reader, self._proc)


def _process(*frames) -> subprocess.Popen | None:
    """The ffmpeg process in the local variables of imageio-ffmpeg's reader, from its suspended
    generator's frame or a traceback's frames (None where it cannot be seen)."""
    for frame in frames:
        proc = frame.f_locals.get("process") if frame is not None else None
        if isinstance(proc, subprocess.Popen):
            return proc
    return None


def _end(reader: Iterator, proc: subprocess.Popen | None) -> None:
    """Close an imageio-ffmpeg frame reader and its pipes: its own clean-up closes them only when
    ffmpeg is still running, and leaves them to the garbage collector (a ``ResourceWarning``) when
    ffmpeg has already exited, as it has after the last frame. ``proc``: :func:`_process` of the
    reader, taken while it was suspended (an exhausted generator no longer shows its locals)."""
    reader.close()
    if proc is not None:
        for pipe in (proc.stdin, proc.stdout):  # stderr: imageio-ffmpeg's log thread closes it
            if pipe is not None:
                pipe.close()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover - imageio-ffmpeg has killed it
            pass


def fuse_video(
    ir: str | Path,
    vi: str | Path,
    out: str | Path,
    fuser: Fuser | str | None = None,
    *,
    grey: bool = False,
    resize_vi: bool = False,
    overwrite: bool = False,
    max_frames: int | None = None,
    progress: Callable[[Iterable, int | None], Iterable] | None = None,
    batch_size: int = 1,
    shortest: bool = False,
    ir_norm: Norm = "range",
) -> VideoReport:
    """Fuse two videos frame by frame into ``out`` (written atomically) with ``fuser`` (a
    :class:`~litefuse.api.Fuser`, or a method name; default: the default IVIF method; A/B
    videos: a ``Fuser(..., task="mef")`` or another A/B task); ``batch_size`` frames
    go through a network per call (the same frames as one at a time, to float rounding).
    Streams of different lengths are an error naming the shorter one, or with ``shortest`` fuse
    up to its end (:attr:`VideoReport.shorter` names it). ``ir_norm`` scales an infrared stream
    of more than 8 bits as images are scaled (a peak such as 4095, or ``minmax`` per frame); an
    8-bit stream takes ``range`` or ``minmax``. ``grey``, ``resize_vi``, ``overwrite``: as
    :func:`litefuse.fuse_folder` takes them; ``max_frames``: stop after that many frames;
    ``progress``: ``(iterable, total) -> iterable`` wrapped around the frames. Returns a
    :class:`VideoReport`; bad or missing streams raise :class:`~litefuse.errors.InputError`."""
    if not whole(batch_size, 1):  # 2.5 never filled a batch: the whole video went in one call
        raise OptionError(f"batch_size must be a whole number of at least 1 (got {batch_size!r})")
    if max_frames is not None and not whole(max_frames, 1):
        raise OptionError(f"max_frames must be a whole number of at least 1 (got {max_frames!r})")
    ir_norm = check_norm(ir_norm)
    out = check_output_path(out, (ir, vi), overwrite, suffixes=VIDEO_SUFFIXES)
    from .api import Fuser, warn_ir_norm

    if not hasattr(fuser, "fuse_prepared"):  # a method name (or None: the default), as fuse and fuse_folder take
        fuser = Fuser(fuser)
    ivif = fuser.task == "ivif"
    with ExitStack() as readers:  # every early error ends both ffmpeg readers
        ir_meta, ir_frames = read_video(ir, grey16=ivif)
        readers.callback(ir_frames.close)
        vi_meta, vi_frames = read_video(vi)
        readers.callback(vi_frames.close)
        if ir_norm != "range" and not ivif:
            which = "A/B videos" + ("" if fuser.task == "ab" else f" ({fuser.task})")
            raise OptionError(f"ir_norm={ir_norm!r} scales an infrared stream; {which} are read as they are")
        warn_ir_norm(fuser, ir_norm)
        if isinstance(ir_norm, float) and not ir_meta["grey16"]:
            raise InputError(f"an 8-bit video (pix_fmt {ir_meta.get('pix_fmt', '?').split('(')[0]}): a sensor peak "
                             f"({ir_norm:g}) applies to 16-bit infrared; use range or minmax", ir)
        (w, h), (wv, hv) = ir_meta["size"], vi_meta["size"]
        for (sw, sh), src in (((w, h), ir), ((wv, hv), vi)):
            if min(sw, sh) < MIN_SIDE:  # as for images
                raise InputError(f"frames are {sw}×{sh} pixels; at least {MIN_SIDE}×{MIN_SIDE} is needed", src)
        if (w, h) != (wv, hv) and not resize_vi:
            turned = [Path(p).name for p, m in ((ir, ir_meta), (vi, vi_meta)) if _rotated(m)]
            if turned and (wv, hv) == (h, w):  # resampling would squash the picture: it is turned, not smaller
                raise InputError(f"frames are {wv}×{hv} here but {w}×{h} in {Path(ir).name}: {' and '.join(turned)} "
                                 f"{'is' if len(turned) == 1 else 'are'} rotated by display-rotation metadata, so the streams "
                                 "do not face the same way; record both alike, or clear the rotation (ffmpeg -display_rotation 0 "
                                 "-i in.mp4 -c copy out.mp4); --resize-vi would squash the picture", vi)
            raise InputError(f"size mismatch: {wv}×{hv} frames here but {w}×{h} in {Path(ir).name} (pass --resize-vi to resample)", vi)
        rate = frame_rate(ir_meta.get("fps") or 25.0)  # exact, for the writer: 23.98 is 24000/1001
        fps = float(rate)
        vi_fps = float(vi_meta.get("fps") or fps)
        if abs(vi_fps - fps) > 0.01 * fps:  # frames pair by index: the streams drift apart in time
            warnings.warn(f"{Path(vi).name} runs at {vi_fps:g} fps, {Path(ir).name} at {fps:g}: frames are paired by "
                          f"index, so the streams drift apart by {abs(1 / fps - 1 / vi_fps) * 60 * fps:.1f} s a minute; "
                          f"the output keeps {fps:g} fps (resample one stream to the other's rate first)", UserWarning, stacklevel=2)
        ir_total, vi_total = _frame_estimate(ir_meta), _frame_estimate(vi_meta)  # by each stream's header
        # for the progress display only: the pairs are counted as they come
        total = min(ir_total, vi_total) if ir_total and vi_total and shortest else ir_total
        if vi_meta.get("audio_codec") or ir_meta.get("audio_codec"):
            with_audio = " and ".join(Path(p).name for p, m in ((ir, ir_meta), (vi, vi_meta)) if m.get("audio_codec"))
            warnings.warn(f"the audio of {with_audio} is not copied: the fused video has no sound", UserWarning, stacklevel=2)
        if max_frames is not None:
            total = min(total, max_frames) if total else max_frames

        ff = _ffmpeg()
        writable_dir(out.parent)
        pix_fmt = "yuv420p" if w % 2 == 0 and h % 2 == 0 else "yuv444p"

        def prepare(frames: tuple[np.ndarray, np.ndarray]):  # decode thread: luma + chroma split
            a, vi_rgb = frames
            if a.dtype == np.uint16:  # a high-bit-depth infrared stream, scaled as 16-bit images are
                a = to_float(a, norm=ir_norm, source=ir)
            elif ivif:
                a = rgb_to_ycbcr(a)[0]
                a = to_float(a, norm="minmax", source=ir) if ir_norm == "minmax" else a
            return fuser.prepare(a, vi_rgb, resize_b=resize_vi, names=(ir, vi))

        with temporary_beside(out, suffix=out.suffix) as tmp:  # ffmpeg picks the container by suffix
            writer = _Encoder(ff.get_ffmpeg_exe(), tmp, out, (w, h), rate, pix_fmt)

            def encode(fused_y: np.ndarray, prepared) -> None:  # encode thread, frames in order
                fused = fuser.finish(fused_y, prepared, grey)
                if fused.ndim == 2:
                    fused = np.repeat(fused[..., None], 3, axis=-1)
                writer.send(np.ascontiguousarray(np.round(np.clip(fused, 0, 1) * 255).astype(np.uint8)).tobytes())

            n = 0
            try:
                ended: list[Path] = []
                pairs = _zip_strict(ir_frames, vi_frames, Path(ir), Path(vi), max_frames, ended if shortest else None,
                                    {Path(ir): ir_total, Path(vi): vi_total})
                prepared_frames = _ahead(map(prepare, pairs), depth=2 * batch_size + 1)
                # closed first on the way out (ExitStack: last in, first out): its decode thread stops
                # before the readers it draws from are closed (closing them mid-read raced with it)
                readers.callback(prepared_frames.close)
                with ThreadPoolExecutor(1, thread_name_prefix="litefuse-encode") as encoder:
                    pending: list[Future] = []
                    for batch in _batches(progress(prepared_frames, total) if progress else prepared_frames, batch_size):
                        lumas = fuser.fuse_prepared(batch, grey)
                        pending += [encoder.submit(encode, y, p) for y, p in zip(lumas, batch)]
                        while pending and pending[0].done():
                            pending.pop(0).result()  # an encoding error stops the run here
                        n += len(batch)
                    for job in pending:
                        job.result()
                if n == 0:
                    raise InputError("no frames", ir)
            except BaseException:
                writer.kill()
                raise
            writer.finish()  # a full disk or a failed encoder: an OutputError, and nothing published
            publish(tmp, out)
        return VideoReport(out, n, fps, (w, h), ended[0] if ended else None)


class _Encoder:
    """ffmpeg's libx264 encoder fed RGB frames on its stdin, writing ``tmp``.

    Unlike imageio-ffmpeg's ``write_frames`` (which does not look at ffmpeg's exit code, so a
    full disk left an empty video behind a successful run, and a pipe broken mid-stream escaped
    as a multi-line ``OSError``), every failure of ffmpeg is an :class:`OutputError` naming
    ``out`` with ffmpeg's own reason ("No space left on device"), one line. ffmpeg runs in its own
    session, so Ctrl-C reaches litefuse alone, which then stops it (:meth:`kill`).
    """

    def __init__(self, exe: str, tmp: str, out: Path, size: tuple[int, int], rate: Fraction, pix_fmt: str) -> None:
        self.out = out
        self._log = tempfile.TemporaryFile()  # not a pipe: ffmpeg never blocks on a full stderr pipe
        cmd = [exe, "-y", "-f", "rawvideo", "-vcodec", "rawvideo", "-s", f"{size[0]}x{size[1]}", "-pix_fmt", "rgb24",
               "-r", str(rate), "-i", "-", "-an", "-vcodec", "libx264", "-pix_fmt", pix_fmt, "-crf", "17",
               "-v", "error", tmp]
        session = ({"start_new_session": True} if os.name == "posix"
                   else {"creationflags": getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)})
        try:
            self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._log, **session)
        except OSError as exc:
            self._log.close()
            raise LitefuseError(f"cannot start ffmpeg ({exc.strerror or exc})") from None

    def send(self, frame: bytes) -> None:
        try:
            self._proc.stdin.write(frame)
        except (OSError, ValueError):  # ffmpeg has quit: a broken pipe (ValueError: stdin closed)
            self._proc.wait()
            raise self._failure() from None

    def finish(self) -> None:
        """Close the stream and wait for ffmpeg; :class:`OutputError` unless it wrote the file."""
        try:
            self._proc.stdin.close()
        except OSError:  # ffmpeg quit before reading everything; its exit code says why
            pass
        code = self._proc.wait()
        failure = self._failure() if code else None
        self._log.close()
        if failure:
            raise failure

    def kill(self) -> None:
        """Stop ffmpeg at once (an error or an interrupt elsewhere)."""
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        if self._proc.stdin:
            try:
                self._proc.stdin.close()
            except OSError:
                pass
        self._log.close()

    def _failure(self) -> OutputError:
        self._log.seek(0)
        lines = [line.strip() for line in self._log.read().decode(errors="replace").splitlines() if line.strip()]
        # an OS error among ffmpeg's lines ("... Could not write header ...: No space left on device") is
        # the reason, as for images; else its last line without the tags ("[out#0/mp4 @ 0x55...] ")
        said = [reason for line in lines for reason in _OS_REASONS if reason in line]
        reason = (said[0] if said else re.sub(r"^(\[[^\]]*\]\s*)+", "", lines[-1]) if lines
                  else f"ffmpeg exited with code {self._proc.returncode}")
        return OutputError(f"{self.out}: cannot write ({reason})")


_OS_REASONS = tuple(os.strerror(getattr(errno, name)) for name in ("ENOSPC", "EDQUOT", "EFBIG", "EROFS", "EACCES", "EPERM", "EIO")
                    if hasattr(errno, name))


def _rotated(meta: dict) -> bool:
    """Whether ffmpeg turned the frames by the stream's display-rotation metadata (decoded W×H swapped)."""
    source = meta.get("source_size")
    return bool(source) and tuple(source) != tuple(meta["size"]) and tuple(source) == tuple(meta["size"])[::-1]


def _frame_estimate(meta: dict) -> int | None:
    """The stream's frame count as its metadata gives it, else duration × frame rate (a
    progress estimate: ffmpeg does not count frames before decoding), else None."""
    n = meta.get("nframes")
    if isinstance(n, (int, float)) and np.isfinite(n) and n > 0:
        return int(n)
    duration, fps = meta.get("duration"), meta.get("fps")
    if isinstance(duration, (int, float)) and isinstance(fps, (int, float)) and duration > 0 and fps > 0:
        return max(1, round(duration * fps))
    return None


T = TypeVar("T")


def _batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _ahead(items: Iterator[T], depth: int) -> Iterator[T]:
    """``items``, produced by a background thread up to ``depth`` ahead of the consumer.

    An exception in the producer is raised in the consumer at the same position; when the
    consumer stops early the producer is told to stop and the thread ends.
    """
    box: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(entry: tuple) -> bool:
        while not stop.is_set():
            try:
                box.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
            put((done, None))
        except BaseException as exc:  # handed to the consumer
            put((None, exc))

    thread = threading.Thread(target=produce, name="litefuse-decode", daemon=True)
    thread.start()
    try:
        while True:
            item, exc = box.get()
            if exc is not None:
                raise exc
            if item is done:
                return
            yield item
    finally:
        stop.set()
        thread.join()


def _zip_strict(
    a: Iterator, b: Iterator, pa: Path, pb: Path, limit: int | None, ended: list | None = None,
    expected: dict[Path, int | None] | None = None,
) -> Iterator[tuple]:
    """Pairs of frames; a stream that ends before the other is an error naming it, or, given
    an ``ended`` list, the end of the pairs (the stream's path is appended to it). ``expected``:
    each stream's frame count by its header (:func:`_frame_estimate`); a stream ending well
    short of its own is said to be truncated or damaged (with ``ended``: a warning)."""
    n = 0
    while limit is None or n < limit:
        fa, fb = next(a, None), next(b, None)
        if fa is None and fb is None:
            return
        if fa is None or fb is None:
            short, other = (pa, pb) if fa is None else (pb, pa)
            promised = (expected or {}).get(short)
            damaged = (f"its header gives about {promised} frames: a truncated or damaged file?"
                       if promised and n < 0.95 * promised - 1 else "")
            if ended is not None:
                if damaged:
                    warnings.warn(f"{short}: the stream ends after {n} frames, but {damaged}", UserWarning, stacklevel=2)
                ended.append(short)
                return
            reason = f"{damaged} " if damaged else "frame counts differ; "
            raise InputError(
                f"stream ends after {n} frames but {other.name} has more ({reason}"
                "--shortest / shortest=True stops at the shorter stream)", short,
            )
        n += 1
        yield fa, fb
