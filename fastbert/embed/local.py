"""The local engine: the shards still to do, on one device in this process, or on several devices with one
spawned worker process a device over disjoint shards; one progress bar."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from .encoder import Encoder, encode_rows
from .job import Job
from .manifest import local_summary
from .plan import InputFile, Shard
from .readers import Row, read_shard
from .writer import arrow_table, release_memory, system_memory_pool, write_shard


class Progress:
    """The progress bar (rows, rows/s, tokens/s, ETA) on stderr; nothing when disabled."""

    def __init__(self, enabled: bool, total: int, initial: int) -> None:
        self.bar = None
        self.tokens = 0
        self.start = time.monotonic()
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=total, initial=initial, unit="row", desc="embed", file=sys.stderr, dynamic_ncols=True
            )

    def update(self, rows: int, tokens: int) -> None:
        self.tokens += tokens
        if self.bar is not None:
            self.bar.update(rows)
            rate = self.tokens / max(time.monotonic() - self.start, 1e-9)
            self.bar.set_postfix_str(f"{rate:,.0f} tokens/s", refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def stderr_is_tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def run_local(
    job: Job,
    files: Sequence[InputFile],
    shards: Sequence[Shard],
    todo: Sequence[Shard],
    output: str,
    devices: list[Any],
    progress: bool | None,
    encoder: Encoder | None,
    lock_fd: int | None = None,
) -> dict[str, Any]:
    """Compute the shards ``todo`` into ``output`` (here with ``encoder``, or one worker a device) and
    return the manifest's summary of ``shards``. ``lock_fd``: the output folder's lock (:mod:`.lock`), which
    the workers hold with this process."""
    done_rows = sum(s.rows for s in shards) - sum(s.rows for s in todo)
    show = progress if progress is not None else stderr_is_tty()
    bar = Progress(show and bool(todo), sum(f.rows for f in files), done_rows)
    try:
        if len(devices) > 1 and todo:
            run_workers(job, files, todo, output, devices, bar, lock_fd)
        elif todo:
            process_shards(job, files, todo, output, devices[0], bar.update, encoder)
    finally:
        bar.close()
    return local_summary(output, shards)


def process_shards(
    job: Job,
    files: Sequence[InputFile],
    shards: Sequence[Shard],
    output: str,
    device: Any,
    report: Callable[[int, int], None],
    encoder: Encoder | None = None,
) -> None:
    """Read, embed and write ``shards`` one after the other (a shard whose file exists is skipped)."""
    encoder = encoder or Encoder(job, device)
    with system_memory_pool():
        for shard in shards:
            process_shard(job, files, shard, output, report, encoder)


def process_shard(job, files, shard, output, report, encoder) -> None:
    """Read, embed and write one shard (skipped when its file exists: it is complete)."""
    path = os.path.join(output, shard.name)
    if os.path.exists(path):
        return
    rows = list(read_shard(job, files[shard.file], shard))
    ids, vectors, valid, bad, tokens = encode_rows(encoder, rows, on_batch=report)
    n_bad_kept = int((~valid).sum()) if len(valid) else 0
    meta = {
        "shard": shard.index,
        "input": files[shard.file].path,
        "input_rows": [shard.start, shard.stop],
        "rows": len(ids),
        "bad": bad,
        "empty": n_bad_kept,
        "skipped": bad - n_bad_kept,
        "tokens": tokens,
    }
    if job.id_column:
        meta.update(duplicate_ids(rows, job.on_error))
    write_shard(path, arrow_table(job, ids, vectors, valid, encoder.dimension, meta))
    if bad:
        report(bad, 0)  # bad rows count as done in the progress bar
    del rows, ids, vectors, valid
    release_memory()


def duplicate_ids(rows: Sequence[Row], on_error: str) -> dict[str, Any]:
    """``{"duplicate_ids": N, "first_duplicate_id": "x", "first_duplicate_at": "path, line 7"}``: the
    written rows of a shard whose id an earlier row of the shard has (a set of one shard's ids: memory stays
    bounded; a repeat across shards is not seen), the first one's id and where it is; ``{}`` when there is
    none."""
    seen: set[Any] = set()
    count, first = 0, None
    for r in rows:
        if r.id is None or (r.error is not None and on_error != "empty"):
            continue  # not written
        if r.id in seen:
            count += 1
            first = first or r
        seen.add(r.id)
    if not count:
        return {}
    return {"duplicate_ids": count, "first_duplicate_id": first.id, "first_duplicate_at": first.where}


# ------------------------------------------------------------------------------------------ --devices


class WorkerFailed(ChildProcessError):
    """A ``--devices`` worker ended without finishing its shards (killed, out of memory, a crash): the CLI
    says it in one line; the shards written so far stay and a rerun resumes after them."""


class _Signalled(BaseException):
    """SIGTERM / SIGHUP reached the parent of the ``--devices`` workers (not an ``Exception``: no handler
    swallows it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _exit_with_parent(parent: int) -> None:
    """A worker's watchdog: the worker ends when its parent is gone (killed with SIGKILL, no handler ran),
    instead of running on and writing shards for nobody."""
    import threading
    import time

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="fastbert-embed-parent-watch", daemon=True).start()


def _ignore_ctrl_c() -> None:
    """A worker ignores SIGINT: Ctrl-C reaches the whole process group, and the parent stops its workers
    (``terminate``) on it. Interrupted by it themselves, workers printed tracebacks from wherever it landed
    (their atexit callbacks, after their last shard). SIGTERM, what ``terminate`` sends, is the default:
    a worker of a parent started with it ignored (a background job, a supervisor) ignored it, and the
    parent waited for it forever."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextlib.contextmanager
def _workers_start_ignoring_ctrl_c():
    """SIGINT ignored while the workers start: a spawned interpreter keeps an ignored SIGINT ignored from
    its first instruction (:func:`_ignore_ctrl_c` in the worker covers a parent off the main thread)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


@contextlib.contextmanager
def _signals_raise():
    """SIGTERM and SIGHUP raise :class:`_Signalled` here (where their disposition is the default: a nohup's
    ignored SIGHUP stays ignored), so that the workers are stopped before this process ends."""
    import signal
    import threading

    def handler(signum, frame):
        raise _Signalled(signum)

    old = {}
    if threading.current_thread() is threading.main_thread():
        for s in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
            if s is not None and signal.getsignal(s) is signal.SIG_DFL:
                old[s] = signal.signal(s, handler)
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


class _SharedFd:
    """A file descriptor a spawned worker gets a copy of (the same open file: the output folder's lock is
    then held until the parent and every worker have ended, so that a worker that outlives a killed parent
    still keeps other runs out of the folder while it may write there)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __reduce__(self):
        from multiprocessing import reduction

        return (_detach_fd, (reduction.DupFd(self.fd),))


def _detach_fd(dup: Any) -> int:
    return dup.detach()


def _compile_in_process() -> None:
    """What a worker compiles (int8's fused passes: a few small loops) is compiled in the worker: Inductor's
    default is a pool of compile processes per process (as many as the machine has cores, one pool a
    worker), which a worker stopped by Ctrl-C or the parent's terminate left to the resource tracker
    ("leaked semaphore objects" on stderr)."""
    try:
        from torch._inductor import config
    except ImportError:  # a torch without Inductor compiles nothing
        return
    config.compile_threads = 1


def _worker_main(job, files, shards, output, device, threads, queue, parent, lock=None) -> None:  # spawned
    # ``lock`` (an fd of the output folder's lock, or None) stays open until this process ends
    _ignore_ctrl_c()
    try:
        _exit_with_parent(parent)
        import torch

        if threads:
            torch.set_num_threads(threads)
        _compile_in_process()
        process_shards(job, files, shards, output, device, lambda r, t: queue.put(("progress", r, t)))
        queue.put(("done", 0, 0))
    except BaseException as e:  # reported to the parent, which raises
        queue.put(("error", f"{e}" or type(e).__name__, type(e).__name__))
        raise SystemExit(1) from None


def run_workers(job, files, todo, output, devices, progress: Progress, lock_fd: int | None = None) -> None:
    """One spawned process a device, each taking every N-th shard of ``todo``; a worker's error is raised.
    Each worker holds a copy of ``lock_fd`` (the output folder's lock) until it ends."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    cpu_workers = sum(1 for d in devices if str(d).startswith("cpu"))
    threads = max(1, (os.cpu_count() or 1) // max(cpu_workers, 1)) if cpu_workers else None
    procs = []
    with _workers_start_ignoring_ctrl_c():
        for w, device in enumerate(devices):
            mine = [s for k, s in enumerate(todo) if k % len(devices) == w]
            p = ctx.Process(
                target=_worker_main,
                args=(
                    job,
                    files,
                    mine,
                    output,
                    device,
                    threads if str(device).startswith("cpu") else None,
                    q,
                    os.getpid(),
                    None if lock_fd is None else _SharedFd(lock_fd),
                ),
                daemon=True,
            )
            p.start()
            procs.append(p)
    errors = []
    try:
        with _signals_raise():
            _collect(procs, q, progress, errors)
    except BaseException as e:
        for p in procs:
            p.terminate()
        for p in procs:
            p.join()
        if isinstance(e, _Signalled):  # the workers are stopped: now end as the signal says
            import signal

            signal.signal(e.signum, signal.SIG_DFL)
            os.kill(os.getpid(), e.signum)
        raise
    failed = [
        f"worker on {d} exited with {_exit_status(p.exitcode)}" for p, d in zip(procs, devices) if p.exitcode
    ]
    if errors:  # a bad row or a bad file stays a ValueError / OSError, as in one process
        kinds = {"ValueError": ValueError, "OSError": OSError, "FileNotFoundError": OSError}
        message, kind = errors[0]
        raise kinds.get(kind, WorkerFailed)(f"a --devices worker stopped: {message}")
    if failed:
        raise WorkerFailed(
            "embed: " + "; ".join(failed) + " (the shards written so far stay: run again to resume)"
        )


def _exit_status(code: int) -> str:
    if code < 0:
        import signal

        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"status {code}"


def _collect(procs, q, progress: Progress, errors: list) -> None:
    """The workers' progress and results, until every worker has reported or ended."""
    import queue as queue_mod

    running = len(procs)
    while running:
        try:
            kind, a, b = q.get(timeout=0.5)
        except queue_mod.Empty:
            if all(not p.is_alive() for p in procs):
                break
            continue
        if kind == "progress":
            progress.update(a, b)
        else:
            running -= 1
            if kind == "error":
                errors.append((a, b))
    for p in procs:
        p.join()
