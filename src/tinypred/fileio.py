"""Atomic writes: a reader never sees a half-written file, nor a half-written directory."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from tinypred.errors import TinypredError


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file beside `path`; on success rename it over `path`, on error delete it.

    The temporary is named `.<name>.<pid>.<random>.tmp`: a process killed mid-write leaves it behind,
    and the next write of the same file removes the ones whose process is gone.
    """
    path = Path(path)
    if path.is_dir():
        raise TinypredError(f"{path}: is a directory; expected a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
            pid = stale.name[len(path.name) + 2 :].split(".", 1)[0]
            if pid.isdigit() and not _alive(int(pid)):
                with contextlib.suppress(OSError):
                    stale.unlink()
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise cannot_write(path, e) from None
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        try:
            os.replace(tmp, path)
        except OSError as e:
            raise cannot_write(path, e) from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def cannot_write(path: Path, e: OSError) -> TinypredError:
    """The one-line error for an output path the system refused, naming the path the user gave (not a
    temporary beside it) and why."""
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                return TinypredError(f"{path}: cannot be written: {parent} is a file, not a directory")
            break
    return TinypredError(f"{path}: cannot be written ({e.strerror or e})")


def _alive(pid: int) -> bool:
    """Whether a process with this id exists (signal 0 checks without sending anything)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, run by someone else
        return True
    return True


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write `obj` as indented JSON, atomically."""
    with atomic_open(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=False)
        f.write("\n")


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w") as f:
        f.write(text)


@contextlib.contextmanager
def atomic_directory(out: str | os.PathLike, replaceable: Callable[[Path], bool]) -> Iterator[Path]:
    """Yield a temporary sibling of `out` to fill; on success it is renamed to `out`, on error deleted.

    An existing `out` is replaced only if `replaceable(out)` says it is ours to replace (the caller's
    own kind of directory), and only once the new one is complete: a kill leaves the old directory or
    none, never a mix. The leftovers of a killed earlier write (`.<name>.tmp-*`, `.<name>.old-*`) are
    removed first. The caller raises for an `out` it must not replace; this only asserts it.
    """
    out = Path(out)
    assert not out.exists() or (out.is_dir() and replaceable(out)), out
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        for stale in out.parent.glob(f".{glob.escape(out.name)}.*-*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp.mkdir()
    except OSError as e:
        raise cannot_write(out, e) from None
    try:
        yield tmp
        old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
        try:
            if out.exists():
                os.replace(out, old)
            os.replace(tmp, out)
        except OSError as e:
            raise cannot_write(out, e) from None
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
