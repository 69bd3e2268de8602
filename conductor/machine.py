"""Telling the machine's failures from the work's.

A check that cannot write its output, a CLI that dies because its transcript cannot be
written, a merge git cannot finish: on a full or read-only disk each looks like the work
failing, and a run would send the work back, restart sessions until they count as failed,
and end saying a workstream failed. Before conductor blames the work for such a failure it
asks the disk: a failure there is a `MachineFault`, which stops the run as interrupted.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterable
from pathlib import Path

import anyio

from conductor.errors import MachineFault

# errno values that are the machine's, not the work's
MACHINE_ERRNOS = frozenset({errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EIO})
PROBE_BYTES = 64 * 1024  # more than a block, so that a disk with a few bytes left fails it


LOW_SPACE = 1 << 20  # below this much free, a disk counts as full (git needs room for a lock)


def disk_trouble(path: Path) -> str | None:
    """What is wrong with the disk `path` is on, from its statistics alone (no write): full
    or read-only; None when it looks fine (or cannot be asked)."""
    try:
        stats = os.statvfs(path)
    except OSError:
        return None
    if stats.f_flag & os.ST_RDONLY:
        return f"{path} is on a read-only file system"
    free = stats.f_bavail * stats.f_frsize
    if stats.f_blocks and free < LOW_SPACE:
        return f"the disk {path} is on is full ({free} bytes free)"
    return None


def is_machine_error(err: BaseException) -> bool:
    return isinstance(err, OSError) and err.errno in MACHINE_ERRNOS


async def probe(folders: Iterable[Path]) -> None:
    """Raise MachineFault, in one line, if any of `folders` cannot take a small write."""
    for folder in folders:
        await anyio.to_thread.run_sync(_probe_one, folder)


def _probe_one(folder: Path) -> None:
    if not folder.is_dir():
        return
    path = folder / f".conductor-probe-{os.getpid()}"
    try:
        # Made new (O_EXCL): whatever a session planted under that name (a link, a FIFO
        # that would block the open) is removed first, never opened.
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, b"\0" * PROBE_BYTES)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as err:
        if is_machine_error(err):
            raise MachineFault(f"{folder} cannot be written: {err.strerror}") from err
        # anything else (permissions, say) is not the disk failing: the caller goes on
    finally:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)


def fault_in(error: BaseException) -> MachineFault | None:
    """The machine fault behind `error`: itself, an OSError of the disk's (ENOSPC, ...), or
    one inside an exception group (a task group wraps what its tasks raise)."""
    if isinstance(error, MachineFault):
        return error
    if is_machine_error(error):  # an OSError of the disk's, raised raw
        assert isinstance(error, OSError)
        where = f"{error.filename}: " if error.filename else ""
        fault = MachineFault(f"{where}{error.strerror}")
        fault.__cause__ = error
        return fault
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            found = fault_in(inner)
            if found is not None:
                return found
    return None
