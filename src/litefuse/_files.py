"""Atomic file output: every file litefuse writes appears complete or not at all, and the checks
made before any work (:func:`check_output_path`, :func:`writable_dir`): an output that would
replace an input, take a suffix not written, or land where no file can be created is refused first.

A writer fills a temporary file in the destination's folder (same file system), which is then
given the permissions a plain ``open`` would have (``0666 & ~umask``; ``mkstemp`` creates
``0600``) and renamed over the destination with ``os.replace``. On any error the temporary
file is removed and an existing destination stays untouched.
"""

from __future__ import annotations

import errno
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import OutputError

__all__ = ["check_output_path", "check_creatable", "choices", "same_path", "writable_dir", "temporary_beside", "new_folders", "missing_folders", "remove_empty", "publish", "atomic_write_bytes", "atomic_write_text"]


@contextmanager
def temporary_beside(path: Path, suffix: str = ".tmp") -> Iterator[str]:
    """A temporary file name in ``path``'s folder (created empty), removed unless published.

    ``suffix`` matters to writers that infer a format from the name (ffmpeg).
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{_shortened(path.name, suffix)}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield tmp
    finally:
        Path(tmp).unlink(missing_ok=True)


def missing_folders(folder: Path) -> list[Path]:
    """``folder`` and those of its parents that do not exist yet, deepest first."""
    return [p for p in (folder, *folder.parents) if not p.exists()]


def remove_empty(folders: list[Path]) -> None:
    """Remove ``folders`` (deepest first) where they are still empty: what a run that wrote
    nothing created is not left behind."""
    for made_folder in sorted(set(folders), key=lambda p: len(p.parts), reverse=True):
        try:
            made_folder.rmdir()
        except OSError:  # not empty (outputs, someone else's files) or already gone: leave it
            pass


@contextmanager
def new_folders(folder: Path) -> Iterator[None]:
    """Create ``folder`` and its missing parents; when the block fails, remove the folders made
    here again (those still empty), so a failed write leaves nothing behind."""
    made = missing_folders(folder)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        yield
    except BaseException:
        remove_empty(made)
        raise


_NAME_MAX = 255  # bytes in one file name (Linux, macOS; Windows: 255 characters)


def _shortened(name: str, suffix: str) -> str:
    """``name`` cut (at a character boundary) so ``.<name>.XXXXXXXX<suffix>`` fits in one file name:
    an output whose name is near the limit can still be written."""
    room = _NAME_MAX - 2 - 8 - len(os.fsencode(suffix))  # two dots, mkstemp's 8 random characters
    raw = os.fsencode(name)
    return name if len(raw) <= room else raw[:room].decode("utf-8", "ignore")


def publish(tmp: str, path: Path, fsync: bool = False, replace: bool = True) -> None:
    """Give a finished temporary file the usual permissions and move it over ``path``.

    ``replace=False``: a ``path`` that exists by now (another process wrote it since it was
    checked) is kept and :class:`FileExistsError` raised -- a hard link, which cannot replace,
    where the file system has them."""
    if fsync:
        with open(tmp, "r+b") as fh:  # Windows flushes only a handle open for writing (EBADF otherwise)
            os.fsync(fh.fileno())
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    if not replace:
        try:
            os.link(tmp, path)  # atomic, and fails on an existing name; the caller's cleanup removes tmp
            return
        except FileExistsError:
            raise
        except OSError:  # no hard links here (FAT, some network shares): check, then rename
            if os.path.lexists(path):
                raise FileExistsError(errno.EEXIST, "File exists", str(path)) from None
    os.replace(tmp, path)


def atomic_write_bytes(path: Path, data: bytes, fsync: bool = False) -> None:
    """Write ``data`` to ``path`` atomically, creating its folder.

    A failed write (a full disk, a read-only file system) is an
    :class:`~litefuse.errors.OutputError` naming ``path``, with the OS error number kept as
    ``errno`` (as :func:`litefuse.io.save_image` raises it), so commands report it as one line.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with temporary_beside(path) as tmp:
            with open(tmp, "wb") as fh:
                fh.write(data)
            publish(tmp, path, fsync=fsync)
    except OSError as exc:
        error = OutputError(f"{path}: cannot write ({exc.strerror or exc})")
        error.errno = exc.errno
        raise error from None


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8, newlines as given) to ``path`` as :func:`atomic_write_bytes` does."""
    atomic_write_bytes(path, text.encode("utf-8"))


def choices(items) -> str:
    """``".png, .tif or .jpg"``."""
    items = list(items)
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"


def same_path(a: str | Path, b: str | Path) -> bool:
    """Whether ``a`` and ``b`` name one file or folder: the same resolved path, or, where both
    exist, the same file by the OS (case-insensitive file systems -- macOS, Windows -- give one
    file several spellings, and a hard link is another name)."""
    a, b = Path(a), Path(b)
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # either does not exist
        return False


def check_output_path(
    out: str | Path, inputs: tuple[str | Path, ...] = (), overwrite: bool = False, suffixes: tuple[str, ...] = (".png",),
    *, folder_checked: bool = False,
) -> Path:
    """Validate an output path before any work is done; returns it resolved. Raises
    :class:`~litefuse.errors.OutputError` when ``out`` is one of ``inputs``, its suffix is not
    in ``suffixes``, its folder cannot take files, or it exists and not ``overwrite``.
    ``folder_checked``: its folder was already found writable (a folder run checks it once,
    not once per pair)."""
    out = Path(out)
    resolved = out.resolve()
    for src in inputs:
        if src is not None and same_path(src, resolved):
            raise OutputError(f"{out}: output path is one of the inputs; refusing to overwrite an input")
    if out.suffix.lower() not in suffixes:
        raise OutputError(f"{out}: not a format written here; use a file name ending in {choices(suffixes)}")
    if not folder_checked:
        check_creatable(out, resolved.parent)
    if out.is_dir():  # before 'exists': --overwrite would not help
        raise OutputError(f"{out}: is a directory; name a file")
    if (out.exists() or out.is_symlink()) and not overwrite:  # a broken link too: not written through in silence
        raise OutputError(f"{out}: output exists; pass --overwrite (overwrite=True) to replace it")
    return resolved


def check_creatable(out: Path, parent: Path) -> None:
    """Refuse early when ``parent`` (or the nearest folder above it that exists) cannot take files."""
    existing = parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"{out}: {existing} is not a directory")
    what = "folder" if existing == parent else f"folder {parent} cannot be created: {existing}"
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"{out}: {what} is not writable")
    try:  # access() says yes to root everywhere (/proc, read-only shares): create a file to be sure
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".litefuse-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"{out}: {what} is not writable ({exc.strerror or exc})") from None


def writable_dir(folder: str | Path) -> Path:
    """Create ``folder`` (and its parents) if needed and check that files can be written in it."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise OutputError(f"{folder}: exists and is not a directory") from None
    except OSError as exc:
        raise OutputError(f"{folder}: cannot create the folder ({exc.strerror or exc})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{folder}: folder is not writable")
    return folder
