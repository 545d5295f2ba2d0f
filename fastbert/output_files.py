"""Writing an output file without losing data or breaking what the path is.

The rule every writer of fastbert follows (``fastbert run --output``, embed's shards and manifest,
``save_pretrained``'s weights, configs and tokenizer files; :func:`output_name` for a library that writes
by name):

- A **regular file**, or a **new path**, in a **writable folder** is replaced atomically: the data go to a
  temporary file beside the target (``.NAME.XXXXXXXX.tmp``), renamed over it once complete. A replaced file
  keeps its mode (and, for root, its owner); a new file gets the mode the umask gives (0666 & ~umask).
- **Anything else is written in place, streamed**: character devices (``/dev/null``), FIFOs, ``/dev/fd/N``,
  ``/proc/self/fd/N``, ``/dev/stdout``, process substitution ``>(...)``, and ``"-"`` (stdout). A regular
  file that is writable in a folder that is not is written in place too (no temporary file can be made).
- **Symlinks are followed**: the file they lead to is written (or replaced), the link stays.
- An **unusable output** (an existing directory, a socket, a missing parent folder, a file or folder that
  cannot be written) is refused by :func:`check_output_path` with an ``OSError`` naming it, before any
  work is done.
- **No temporary file outlives the run**: an error, ``KeyboardInterrupt``, or a signal that ends the process
  (SIGTERM, SIGHUP, SIGINT, SIGQUIT, SIGUSR1/2, SIGALRM, SIGXCPU, SIGXFSZ, while their handler is the
  default) removes it. The process then ends by the same signal (the shell sees 128 + the signal number);
  SIGINT raises ``KeyboardInterrupt`` as Python does. An ignored signal (``nohup``) is left ignored.
  SIGKILL cannot be caught: a temporary ``.NAME.XXXXXXXX.tmp`` may then remain.

```python
from fastbert.output_files import check_output_path, open_output
check_output_path(path)                    # before loading the model
with open_output(path, "w") as f:          # "wb" for binary; path "-" is stdout
    f.write(...)
```
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import signal
import stat
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any

__all__ = ["OutputPlan", "check_output_path", "open_output", "output_name", "output_plan", "write_files_into"]

STDOUT = "-"
# /dev/fd/N, /dev/stdout, /proc/self/fd/N, /proc/<pid>/fd/N: a descriptor the caller opened, never replaced
_FD_PATH = re.compile(r"^/(dev/(fd/\d+|stdout|stderr)|proc/(self|thread-self|\d+)/fd/\d+)$")


@dataclass(frozen=True)
class OutputPlan:
    """How :func:`open_output` writes a path.

    ``how``: ``"replace"`` (temporary file beside ``target``, renamed over it), ``"in-place"`` (``target``
    opened for writing and streamed) or ``"stdout"``. ``target``: the path written, symlinks followed for
    a replace (the path as given otherwise: the kernel follows it on open). ``mode``, ``uid``, ``gid``: the
    permission bits (and owner, restored when root) a replaced file keeps; None for a new file (the umask
    decides) and for in-place writes (the file itself stays).
    """

    path: str
    how: str
    target: str
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None


def _refuse(code: int, message: str) -> OSError:
    """The OSError subclass of ``code`` whose text is ``message`` alone (no ``[Errno N]`` prefix)."""
    cls = {
        errno.ENOENT: FileNotFoundError,
        errno.EISDIR: IsADirectoryError,
        errno.EACCES: PermissionError,
        errno.EEXIST: FileExistsError,
    }.get(code, OSError)
    error = cls(message)
    error.errno = code  # (a filename or strerror set here would bring the prefix back into str())
    return error


def _writable(path: str) -> bool:
    return os.access(path, os.W_OK)


def _writable_folder(folder: str) -> bool:
    return os.access(folder, os.W_OK | os.X_OK)


def _is_fd_path(path: str) -> bool:
    """True when ``path`` or any link on the way to its target names an open descriptor."""
    seen = 0
    current = os.path.abspath(path)
    while True:
        if _FD_PATH.match(current):
            return True
        if not os.path.islink(current) or seen > 40:
            return False
        link = os.readlink(current)
        current = os.path.normpath(os.path.join(os.path.dirname(current), link))
        seen += 1


def output_plan(path: str | os.PathLike) -> OutputPlan:
    """How ``path`` would be written (see :class:`OutputPlan`); an ``OSError`` naming it when it cannot be."""
    if isinstance(path, bytes):
        raise TypeError("the output path must be a str or os.PathLike of str, not bytes")
    path = os.fspath(path)
    if not isinstance(path, str) or not path:
        raise ValueError(f"the output path must be a non-empty string, got {path!r}")
    if path == STDOUT:
        if sys.stdout is None:  # started with it closed (``>&-``): Python then has no stdout object
            raise _refuse(errno.EBADF, "cannot write to stdout: it is closed (write to a file instead)")
        return OutputPlan(path, "stdout", STDOUT)
    if _is_fd_path(path):
        if not os.path.exists(path):
            raise _refuse(errno.EBADF, f"cannot write {path}: no such open file descriptor")
        return OutputPlan(path, "in-place", path)
    try:
        st = os.stat(path)  # follows symlinks
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise _refuse(e.errno, f"cannot write {path}: {e.strerror}") from None
    if st is None:
        # a new path (or a symlink to one): created beside its real target
        target = os.path.realpath(path)
        folder = os.path.dirname(target)
        if not os.path.isdir(folder):
            raise _refuse(errno.ENOENT, f"cannot write {path}: folder {folder} does not exist")
        if not _writable_folder(folder):
            raise _refuse(errno.EACCES, f"cannot write {path}: folder {folder} is not writable")
        return OutputPlan(path, "replace", target)
    kind = st.st_mode
    if stat.S_ISDIR(kind):
        raise _refuse(errno.EISDIR, f"cannot write {path}: it is a directory, not a file")
    if stat.S_ISSOCK(kind):
        raise _refuse(errno.ENXIO, f"cannot write {path}: it is a socket, not a file")
    if not stat.S_ISREG(kind):  # character or block device, FIFO
        if not _writable(path):
            raise _refuse(errno.EACCES, f"cannot write {path}: permission denied")
        return OutputPlan(path, "in-place", path)
    target = os.path.realpath(path)
    folder = os.path.dirname(target)
    if _writable_folder(folder):
        return OutputPlan(path, "replace", target, stat.S_IMODE(kind), st.st_uid, st.st_gid)
    if _writable(target):
        return OutputPlan(path, "in-place", target)
    raise _refuse(errno.EACCES, f"cannot write {path}: the file and its folder {folder} are read-only")


def check_output_path(path: str | os.PathLike) -> OutputPlan:
    """Refuse an output that cannot be written (``OSError`` naming it and why), before any work is done.

    Returns the :class:`OutputPlan` that :func:`open_output` follows. A file to be replaced is tried: a
    temporary file is made beside it and removed, so that a folder where no file can be made (``/proc``,
    a read-only mount, even for root, whom the permission bits do not stop) is refused now, not after
    the work.
    """
    plan = output_plan(path)
    if plan.how == "replace":
        _try_replace(plan)
    return plan


def _try_replace(plan: OutputPlan) -> None:
    folder = os.path.dirname(plan.target) or "."
    try:
        tmp, fd = _new_temp(plan.target)
    except OSError as e:
        reason = os.strerror(e.errno) if e.errno else "no file can be made there"
        if os.path.exists(plan.target):
            raise _refuse(
                e.errno or errno.EACCES,
                f"cannot write {plan.path}: it is not a regular file that can be replaced (no file can be "
                f"made beside it in {folder}: {reason})",
            ) from None
        raise _refuse(
            e.errno or errno.EACCES, f"cannot write {plan.path}: no file can be made in {folder} ({reason})"
        ) from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(tmp)


# ------------------------------------------------------------------------------------ temporary files
_live_temps: set[str] = set()
_previous_handlers: dict[int, Any] = {}
_lock = threading.Lock()
# the signals whose default action ends the process and that Python can catch (profilers' SIGPROF and
# SIGVTALRM aside); each gets the cleanup handler only while its handler is Python's default
_SIGNALS = tuple(
    getattr(signal, n)
    for n in ("SIGTERM", "SIGHUP", "SIGINT", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGXCPU", "SIGXFSZ")
    if hasattr(signal, n)
)


def _remove_temps() -> None:
    for tmp in list(_live_temps):
        if os.path.isdir(tmp) and not os.path.islink(tmp):  # write_files_into's staging folder
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        _live_temps.discard(tmp)


def _on_signal(signum: int, frame: Any) -> None:
    previous = _previous_handlers.get(signum, signal.SIG_DFL)
    _remove_temps()
    _restore_handlers()
    if callable(previous):  # SIGINT's default_int_handler raises KeyboardInterrupt; others as installed
        previous(signum, frame)
        return
    # the default action: end by the same signal, so the parent sees 128 + signum
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install_handlers() -> None:
    if _previous_handlers or threading.current_thread() is not threading.main_thread():
        return  # installed already, or not installable (signals are the main thread's)
    for sig in _SIGNALS:
        previous = signal.getsignal(sig)
        if previous not in (signal.SIG_DFL, signal.default_int_handler):
            # ignored (nohup), not set from Python, or the program's own handler (a graceful stop that sets a
            # flag): left as it is; the write goes on, and the block's own cleanup runs if the handler raises
            continue
        _previous_handlers[sig] = previous
        signal.signal(sig, _on_signal)


def _restore_handlers() -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    for sig, previous in list(_previous_handlers.items()):
        if signal.getsignal(sig) is _on_signal:
            signal.signal(sig, previous)
        del _previous_handlers[sig]


TEMP_SUFFIX = ".tmp"


def is_temp_name(name: str) -> bool:
    """True for the name of a temporary file :func:`open_output` makes (``.NAME.XXXXXXXX.tmp``): what a
    SIGKILL may leave behind, safe to remove before a rerun."""
    return name.startswith(".") and name.endswith(TEMP_SUFFIX) and len(name.split(".")) >= 4


def _fsync_folder(folder: str) -> None:
    """Make a rename in ``folder`` durable (where the platform allows opening a folder)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder or ".", os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _new_temp(target: str) -> tuple[str, int]:
    folder, name = os.path.split(target)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = os.path.join(folder, f".{name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")
        try:
            return tmp, os.open(tmp, flags, 0o666)  # 0666 & ~umask, as a plain open() would
        except FileExistsError:
            continue
        except OSError as e:  # a read-only file system, a full disk...
            raise _refuse(e.errno or errno.EIO, f"cannot write {target}: {e.strerror}") from None
    raise _refuse(errno.EEXIST, f"cannot make a temporary file beside {target}")


class _NamedErrors:
    """A file whose write errors name the output (``No space left on device`` says where)."""

    def __init__(self, f: IO, path: str) -> None:
        self._f = f
        self._path = path

    def _fail(self, e: OSError) -> OSError:
        name = "stdout" if self._path == STDOUT else self._path
        return _refuse(e.errno or errno.EIO, f"cannot write {name}: {e.strerror or e}")

    def write(self, data: Any) -> int:
        try:
            return self._f.write(data)
        except BrokenPipeError:
            raise
        except OSError as e:
            raise self._fail(e) from None

    def flush(self) -> None:
        try:
            self._f.flush()
        except BrokenPipeError:
            raise
        except OSError as e:
            raise self._fail(e) from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)


def _open_fd(fd: int | str, mode: str) -> IO:
    if "b" in mode:
        return open(fd, mode)
    return open(fd, mode, encoding="utf-8", newline="")


@contextlib.contextmanager
def open_output(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
    """Open ``path`` for writing by the rule of this module; the file is complete when the block ends.

    ``mode``: ``"w"`` (UTF-8 text, newlines as written) or ``"wb"``. ``"-"`` is stdout (flushed, not
    closed). A block that raises leaves a replaced target as it was and removes the temporary file.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"open_output mode must be 'w' or 'wb', got {mode!r}")
    plan = output_plan(path)
    if plan.how == "stdout":
        stream = sys.stdout.buffer if mode == "wb" else sys.stdout
        out = _NamedErrors(stream, STDOUT)
        yield out
        out.flush()
        return
    if plan.how == "in-place":
        try:
            f = _open_fd(plan.target, mode)
        except OSError as e:
            raise _refuse(e.errno, f"cannot write {plan.path}: {e.strerror}") from None
        out = _NamedErrors(f, plan.path)
        try:
            yield out
            out.flush()
        finally:
            with contextlib.suppress(OSError):
                f.close()
        return

    with _beside(plan) as (_, fd):
        f = _open_fd(fd, mode)
        try:
            out = _NamedErrors(f, plan.path)
            yield out
            out.flush()
            _settle(fd, plan)
        finally:
            f.close()


@contextlib.contextmanager
def output_name(path: str | os.PathLike) -> Iterator[str]:
    """The name to give a library that writes a file by its name (safetensors' ``save_file``, a
    ``tokenizers.Tokenizer.save``), by the rule of this module: a temporary name beside ``path``, renamed
    over it once the block ends (a block that raises leaves ``path`` as it was); ``path`` itself where it is
    written in place. Not stdout."""
    plan = output_plan(path)
    if plan.how == "stdout":
        raise ValueError("a file written by its name cannot go to stdout")
    if plan.how == "in-place":
        yield plan.target
        return
    with _beside(plan) as (tmp, fd):
        os.close(fd)
        yield tmp
        fd = os.open(tmp, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            _settle(fd, plan)
        finally:
            os.close(fd)


def write_files_into(folder: str | os.PathLike, write: Callable[[str], Sequence[str]]) -> tuple[str, ...]:
    """Files a library writes into a folder under names it chooses (``tokenizers``' ``model.save``): ``write``
    gets a temporary folder inside ``folder`` and returns the paths it wrote there, each then renamed into
    ``folder`` once all are complete (a ``write`` that raises leaves ``folder`` as it was). Returns their
    paths in ``folder``."""
    import shutil
    import tempfile

    folder = os.fspath(folder)
    with _lock:
        staging = tempfile.mkdtemp(prefix=".fastbert-", suffix=".tmp", dir=folder)
        _live_temps.add(staging)  # removed by a signal that ends the process too
        _install_handlers()
    try:
        written = [os.fspath(p) for p in write(staging)]
        for path in written:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        out = []
        for path in written:
            target = os.path.join(folder, os.path.basename(path))
            os.replace(path, target)
            out.append(target)
        _fsync_folder(folder)
        return tuple(out)
    finally:
        with _lock:
            shutil.rmtree(staging, ignore_errors=True)
            _live_temps.discard(staging)
            if not _live_temps:
                _restore_handlers()


def _settle(fd: int, plan: OutputPlan) -> None:
    """The finished temporary file's data on disk before its name points at them, with the mode (and, for
    root, the owner) of the file it replaces."""
    os.fsync(fd)
    if plan.mode is not None:
        os.chmod(fd, plan.mode)
        if plan.uid is not None and hasattr(os, "geteuid") and os.geteuid() == 0:
            with contextlib.suppress(OSError):
                os.chown(fd, plan.uid, plan.gid)


@contextlib.contextmanager
def _beside(plan: OutputPlan) -> Iterator[tuple[str, int]]:
    """(name, descriptor) of a new temporary file beside ``plan.target``, renamed over the target when the
    block ends; removed when it raises (or a signal ends the process meanwhile)."""
    with _lock:
        tmp, fd = _new_temp(plan.target)
        _live_temps.add(tmp)
        _install_handlers()
    try:
        yield tmp, fd
        os.replace(tmp, plan.target)
        _fsync_folder(os.path.dirname(plan.target))
        with _lock:
            _live_temps.discard(tmp)
    finally:
        with _lock:
            if tmp in _live_temps:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                _live_temps.discard(tmp)
            if not _live_temps:
                _restore_handlers()
