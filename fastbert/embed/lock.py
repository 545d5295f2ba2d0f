"""The lock of an output folder: one ``fastbert embed`` run writes a folder at a time.

A run holds an exclusive ``flock`` on ``.fastbert-embed.lock`` in its output folder (dot-prefixed: dataset
readers skip it) from before it reads the folder's manifest to its end; a second run into the folder is
refused while the first holds it, instead of mixing its shards with the first one's or removing them
(``--overwrite``). The operating system releases the lock when its process ends, however it ends (SIGKILL
too), so a killed run never leaves the folder locked; the file itself is removed when a run ends normally
and is harmless when left (the next run locks it again). The ``--devices`` workers hold the parent's lock
with it (a copy of its file descriptor: a worker that outlives a killed parent for a moment keeps the folder
locked until it ends); Ray's tasks write for the driver, which holds it.

The lock covers local folders on filesystems with ``flock`` (NFS included, where Linux maps it to a byte-range
lock); an output URI (``s3://...``, the Ray engine) has none.
"""

from __future__ import annotations

import contextlib
import os
import socket
import warnings

try:
    import fcntl
except ImportError:  # pragma: no cover (not POSIX)
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".fastbert-embed.lock"


class OutputInUse(OSError):
    """Another ``fastbert embed`` run holds the lock of the output folder (the CLI says it in one line)."""


class FolderLock:
    """An exclusive lock on an output folder, held from :meth:`acquire` to :meth:`release`."""

    def __init__(self, folder: str, fd: int | None) -> None:
        self.folder = folder
        self.path = os.path.join(folder, LOCK_NAME)
        self.fd = fd

    @classmethod
    def acquire(cls, folder: str) -> FolderLock:
        """Lock ``folder`` (which exists) for this process, or raise :class:`OutputInUse` naming it; never
        waits. Where the filesystem has no ``flock``, a warning says so and the run goes on unlocked."""
        path = os.path.join(folder, LOCK_NAME)
        if fcntl is None:  # pragma: no cover
            return cls(folder, None)
        for _ in range(100):  # the file can be replaced between open and flock (see below): open it again
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _holder(fd)
                os.close(fd)
                raise OutputInUse(
                    f"output folder {folder} is in use: another fastbert embed{holder} is writing it (its lock "
                    f"{LOCK_NAME} is held); wait for that run to end, or pass another --output"
                ) from None
            except OSError as e:  # a filesystem without locks
                os.close(fd)
                warnings.warn(
                    f"cannot lock the output folder {folder} ({e.strerror or e}): a second fastbert embed "
                    "writing it at the same time would not be refused",
                    stacklevel=3,
                )
                return cls(folder, None)
            # a run that ended removed the file while holding its lock, after this process opened it: the
            # lock just taken is on a file no other run will see; take the one at the path
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(path))
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
                return cls(folder, fd)
            os.close(fd)
        raise OutputInUse(
            f"output folder {folder}: cannot take its lock {LOCK_NAME} (it keeps being replaced)"
        )

    @property
    def held(self) -> bool:
        """True while this process holds the lock."""
        return self.fd is not None

    def release(self) -> None:
        """Remove the lock file (while holding the lock: a run that opened it meanwhile opens it again) and
        release the lock; nothing when not held."""
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        with contextlib.suppress(OSError):
            if os.path.samestat(os.fstat(fd), os.stat(self.path)):
                os.remove(self.path)
        os.close(fd)


def _holder(fd: int) -> str:
    """`` (pid N)``, `` (pid N on HOST)`` or `` (the --devices workers of pid N, which has ended)`` from the
    lock file's content, or nothing."""
    with contextlib.suppress(OSError, ValueError):
        pid, host = os.pread(fd, 200, 0).decode().split()
        if host != socket.gethostname():
            return f" (pid {int(pid)} on {host})"
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:  # killed; its --devices workers hold the lock until they end
            return f" (the --devices workers of pid {int(pid)}, which has ended)"
        except PermissionError:
            pass
        return f" (pid {int(pid)})"
    return ""
