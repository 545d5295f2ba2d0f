"""``fastbert.output_files``: what each kind of output path becomes, and that no temporary file outlives a run.

Root (here and in CI) may write anything: where a case needs a folder or file root can write anyway, the
decision is checked through ``output_plan`` with the permission probe patched to what a user would get,
and the write is checked by the file's inode (kept: written in place; new: replaced).
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from process_helpers import default_signals

from fastbert import output_files
from fastbert.output_files import check_output_path, open_output, output_plan

ROOT = os.geteuid() == 0
REPO = str(Path(__file__).resolve().parents[2])


def temps(folder) -> list[str]:
    return [n for n in os.listdir(folder) if n.endswith(".tmp")]


def write_text(path, text="data\n") -> None:
    with open_output(path, "w") as f:
        f.write(text)


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield
    os.umask(old)


# ------------------------------------------------------------------------------------------ regular files
def test_new_file_follows_the_umask_not_0600(tmp_path, umask_027):
    out = tmp_path / "new.jsonl"
    assert output_plan(out).how == "replace"
    write_text(out)
    assert out.read_text() == "data\n"
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    assert temps(tmp_path) == []


def test_existing_file_replaced_atomically_keeps_its_mode(tmp_path):
    out = tmp_path / "old.csv"
    out.write_text("previous\n")
    out.chmod(0o751)
    inode = out.stat().st_ino
    write_text(out, "new\n")
    assert out.read_text() == "new\n"
    assert stat.S_IMODE(out.stat().st_mode) == 0o751
    assert out.stat().st_ino != inode  # a new file renamed over the old one
    assert temps(tmp_path) == []


def test_error_inside_the_block_leaves_the_target_and_no_temp(tmp_path):
    out = tmp_path / "keep.jsonl"
    out.write_text("previous\n")
    with pytest.raises(RuntimeError), open_output(out, "w") as f:
        f.write("half")
        raise RuntimeError("failed mid-run")
    assert out.read_text() == "previous\n"
    assert temps(tmp_path) == []
    with pytest.raises(KeyboardInterrupt), open_output(tmp_path / "new.jsonl", "wb") as f:
        f.write(b"half")
        raise KeyboardInterrupt
    assert sorted(os.listdir(tmp_path)) == ["keep.jsonl"]


def test_binary_mode_and_bad_modes(tmp_path):
    out = tmp_path / "x.npy"
    with open_output(out, "wb") as f:
        f.write(b"\x93NUMPY")
    assert out.read_bytes() == b"\x93NUMPY"
    with pytest.raises(ValueError, match="mode"), open_output(out, "a"):
        pass
    with pytest.raises(ValueError, match="non-empty"):
        check_output_path("")


# ---------------------------------------------------------------------------------------- special files
def test_dev_null_stays_a_character_device():
    before = os.stat("/dev/null")
    assert output_plan("/dev/null").how == "in-place"
    write_text("/dev/null", "x" * 10000)
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev
    assert stat.S_IMODE(after.st_mode) == stat.S_IMODE(before.st_mode)
    assert temps("/dev") == []


def test_dev_full_is_a_clear_error_naming_it():
    with pytest.raises(OSError, match="cannot write /dev/full: No space left on device") as e:
        with open_output("/dev/full", "w") as f:
            f.write("x" * 100000)
    assert e.value.errno == errno.ENOSPC
    assert "[Errno" not in str(e.value)


def test_fifo_is_streamed_to_its_reader_and_stays_a_fifo(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()))
    reader.start()
    assert output_plan(fifo).how == "in-place"
    with open_output(fifo, "w") as f:
        for i in range(3):
            f.write(f"line {i}\n")
    reader.join(timeout=30)
    assert got == ["line 0\nline 1\nline 2\n"]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert temps(tmp_path) == []


@pytest.mark.parametrize("prefix", ["/dev/fd", "/proc/self/fd"])
def test_descriptor_paths_write_to_the_descriptor(prefix):
    r, w = os.pipe()
    try:
        path = f"{prefix}/{w}"
        assert output_plan(path).how == "in-place"
        write_text(path, "through the descriptor\n")
        assert os.read(r, 100) == b"through the descriptor\n"
    finally:
        os.close(r)
        with_suppressed_close(w)


def with_suppressed_close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def test_closed_descriptor_path_is_refused():
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    with pytest.raises(OSError, match="descriptor"):
        check_output_path(f"/dev/fd/{w}")


def test_stdout_dash(capsys):
    assert output_plan("-").how == "stdout"
    write_text("-", "to stdout\n")
    assert capsys.readouterr().out == "to stdout\n"


def test_socket_is_refused(tmp_path):
    path = tmp_path / "sock"
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(path))
        with pytest.raises(OSError, match="socket"):
            check_output_path(path)
    finally:
        server.close()


# ----------------------------------------------------------------------------------------------- symlinks
def test_symlink_chain_is_followed_and_every_link_stays(tmp_path):
    real = tmp_path / "real.jsonl"
    real.write_text("old\n")
    real.chmod(0o604)
    middle = tmp_path / "middle"
    first = tmp_path / "first"
    middle.symlink_to(real)
    first.symlink_to(middle)
    assert output_plan(first).target == str(real)
    write_text(first, "new\n")
    assert first.is_symlink() and middle.is_symlink()
    assert os.readlink(first) == str(middle) and os.readlink(middle) == str(real)
    assert real.read_text() == "new\n" and stat.S_IMODE(real.stat().st_mode) == 0o604
    assert temps(tmp_path) == []


def test_dangling_symlink_creates_its_target(tmp_path):
    (tmp_path / "sub").mkdir()
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "sub" / "made.jsonl")
    write_text(link)
    assert link.is_symlink() and (tmp_path / "sub" / "made.jsonl").read_text() == "data\n"
    dangling = tmp_path / "nowhere"
    dangling.symlink_to(tmp_path / "missing" / "x")
    with pytest.raises(OSError, match="does not exist"):
        check_output_path(dangling)


def test_symlink_to_a_descriptor_is_written_in_place(tmp_path):
    r, w = os.pipe()
    try:
        link = tmp_path / "out"
        link.symlink_to(f"/proc/self/fd/{w}")
        assert output_plan(link).how == "in-place"
        write_text(link, "via link\n")
        assert os.read(r, 100) == b"via link\n"
        assert link.is_symlink()
    finally:
        os.close(r)
        with_suppressed_close(w)


# ---------------------------------------------------------------------------------------- unusable paths
def test_unusable_outputs_are_refused_up_front(tmp_path):
    with pytest.raises(IsADirectoryError, match="directory"):
        check_output_path(tmp_path)
    with pytest.raises(FileNotFoundError, match=f"folder {tmp_path / 'missing'} does not exist"):
        check_output_path(tmp_path / "missing" / "out.jsonl")
    (tmp_path / "file").write_text("")
    with pytest.raises(OSError, match="cannot write"):
        check_output_path(tmp_path / "file" / "out.jsonl")  # a parent that is a file


def _as_user(monkeypatch, writable: set[str]) -> None:
    """Permission answers of a non-root user to whom only ``writable`` paths are writable."""
    monkeypatch.setattr(output_files, "_writable", lambda p: os.path.realpath(p) in writable)
    monkeypatch.setattr(output_files, "_writable_folder", lambda p: os.path.realpath(p) in writable)


def test_writable_file_in_read_only_folder_is_written_in_place(tmp_path, monkeypatch):
    folder = tmp_path / "ro"
    folder.mkdir()
    out = folder / "out.jsonl"
    out.write_text("previous\n")
    out.chmod(0o664)
    inode = out.stat().st_ino
    folder.chmod(0o555)
    try:
        if ROOT:  # root writes anywhere: ask as a user to whom only the file is writable
            _as_user(monkeypatch, {str(out)})
        assert output_plan(out).how == "in-place"
        write_text(out, "new\n")
        assert out.read_text() == "new\n"
        assert out.stat().st_ino == inode and stat.S_IMODE(out.stat().st_mode) == 0o664
        assert temps(folder) == []
        # a new path, or a read-only file, in that folder: refused before any work
        with pytest.raises(PermissionError, match="not writable"):
            check_output_path(folder / "new.jsonl")
        out.chmod(0o444)
        if ROOT:
            _as_user(monkeypatch, set())
        with pytest.raises(PermissionError, match="read-only"):
            check_output_path(out)
    finally:
        folder.chmod(0o755)


# ---------------------------------------------------------------------------------------------- signals
WRITER = """
import signal, sys, time
from fastbert.output_files import open_output
if sys.argv[2] == "ignore-hup":
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
try:
    with open_output(sys.argv[1], "w") as f:
        f.write("partial\\n")
        f.flush()
        print("ready", flush=True)
        time.sleep(float(sys.argv[3]))
        f.write("done\\n")
except KeyboardInterrupt:
    sys.exit(130)
"""


def _writer(tmp_path, mode: str, sleep: float):
    env = {**os.environ, "PYTHONPATH": REPO}
    out = tmp_path / "out.jsonl"
    p = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(out), mode, str(sleep)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=default_signals,  # SIGINT / SIGHUP default even when pytest runs in the background or under nohup
    )
    assert p.stdout.readline() == "ready\n", p.stderr.read()
    assert len(temps(tmp_path)) == 1  # the run is under way, its temporary file beside the target
    return p, out


@pytest.mark.parametrize(
    "sig, code",
    [
        (signal.SIGTERM, -signal.SIGTERM),
        (signal.SIGHUP, -signal.SIGHUP),
        (signal.SIGINT, 130),
        (signal.SIGUSR1, -signal.SIGUSR1),
        (signal.SIGALRM, -signal.SIGALRM),
    ],
    ids=["SIGTERM", "SIGHUP", "SIGINT", "SIGUSR1", "SIGALRM"],
)
def test_signal_that_ends_the_run_leaves_no_temp_file(tmp_path, sig, code):
    p, out = _writer(tmp_path, "plain", 60)
    p.send_signal(sig)
    assert p.wait(timeout=60) == code  # SIGTERM / SIGHUP: ended by the signal itself (shell: 128 + N)
    assert "Traceback" not in p.stderr.read()
    assert os.listdir(tmp_path) == []  # neither a temp file nor a half-written target


def test_ignored_sighup_does_not_end_the_run(tmp_path):
    p, out = _writer(tmp_path, "ignore-hup", 1)
    p.send_signal(signal.SIGHUP)  # nohup: the run goes on and completes
    assert p.wait(timeout=60) == 0, p.stderr.read()
    assert out.read_text() == "partial\ndone\n" and temps(tmp_path) == []


def test_handlers_are_restored_after_the_block(tmp_path):
    before = {s: signal.getsignal(s) for s in output_files._SIGNALS}
    with open_output(tmp_path / "a", "w") as f:
        assert signal.getsignal(signal.SIGTERM) is not before[signal.SIGTERM]
        with open_output(tmp_path / "b", "w") as g:  # two outputs at once: one set of handlers
            f.write("a")
            g.write("b")
        assert len(temps(tmp_path)) == 1
    assert {s: signal.getsignal(s) for s in before} == before
    assert sorted(os.listdir(tmp_path)) == ["a", "b"]


def test_open_output_in_a_thread_works_without_handlers(tmp_path):
    errors = []

    def run():
        try:
            write_text(tmp_path / "t.jsonl")
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    t = threading.Thread(target=run)
    t.start()
    t.join()
    assert errors == [] and (tmp_path / "t.jsonl").read_text() == "data\n"


def test_files_a_library_writes_into_a_folder_arrive_whole(tmp_path):
    """write_files_into (tokenizers' model.save writes vocab.txt / vocab.json + merges.txt under its own
    names): the files go to a folder inside the target first and are renamed in once all are complete; a
    write that fails half way leaves the earlier files and no temporary folder."""
    from fastbert.output_files import write_files_into

    (tmp_path / "vocab.txt").write_text("old\n")

    def half_then_fail(folder):
        with open(os.path.join(folder, "vocab.txt"), "w") as f:
            f.write("ne")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_files_into(tmp_path, half_then_fail)
    assert sorted(os.listdir(tmp_path)) == ["vocab.txt"] and (tmp_path / "vocab.txt").read_text() == "old\n"

    def both(folder):
        for name, text in (("vocab.json", "{}"), ("merges.txt", "#v\n")):
            with open(os.path.join(folder, name), "w") as f:
                f.write(text)
        return [os.path.join(folder, "vocab.json"), os.path.join(folder, "merges.txt")]

    assert write_files_into(tmp_path, both) == (str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt"))
    assert sorted(os.listdir(tmp_path)) == ["merges.txt", "vocab.json", "vocab.txt"]
    from fastbert import AutoTokenizer
    from fastbert.hub import embedded_model_path

    saved = AutoTokenizer.from_pretrained(embedded_model_path()).save_pretrained(tmp_path / "tok")
    assert sorted(os.listdir(tmp_path / "tok")) == sorted(os.path.basename(p) for p in saved)


FOLDER_WRITER = """
import os, sys, time
from fastbert.output_files import write_files_into

def slow(staging):
    with open(os.path.join(staging, "vocab.txt"), "w") as f:
        f.write("ne")
    print("ready", flush=True)
    time.sleep(60)

write_files_into(sys.argv[1], slow)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_signal_during_write_files_into_leaves_no_staging_folder(tmp_path, sig):
    """write_files_into's staging folder was removed by its ``finally`` only: a SIGTERM (or SIGHUP) ended the
    process without it, and a ``.fastbert-XXXX.tmp`` folder holding a half-written vocabulary stayed inside
    the saved model's folder (pushed to the hub with it). A signal removes it as it removes open_output's."""
    (tmp_path / "vocab.txt").write_text("old\n")
    p = subprocess.Popen(
        [sys.executable, "-c", FOLDER_WRITER, str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": REPO},
        preexec_fn=default_signals,
    )
    assert p.stdout.readline() == "ready\n", p.stderr.read()
    assert len(temps(tmp_path)) == 1  # the staging folder, under way
    p.send_signal(sig)
    assert p.wait(timeout=60) == -sig
    assert os.listdir(tmp_path) == ["vocab.txt"] and (tmp_path / "vocab.txt").read_text() == "old\n"


@pytest.mark.parametrize(
    "sig", [signal.SIGTERM, signal.SIGUSR1, signal.SIGINT], ids=["SIGTERM", "SIGUSR1", "SIGINT"]
)
def test_a_programs_own_signal_handler_is_left_alone_and_the_write_completes(tmp_path, sig):
    """A program's own handler (a training loop that stops gracefully on SIGTERM, after its checkpoint) was
    wrapped by open_output's cleanup: the signal removed the temporary file, then the handler returned, the
    write went on into the removed file and ended in a FileNotFoundError, the checkpoint lost. Only the
    default handlers get the cleanup (as the module says); a program's own handler runs as it is."""
    seen = []

    def handler(signum, frame):
        seen.append(signum)

    previous = signal.signal(sig, handler)
    try:
        with open_output(tmp_path / "ckpt.json", "w") as f:
            f.write("partial ")
            assert signal.getsignal(sig) is handler
            os.kill(os.getpid(), sig)
            f.write("done\n")
    finally:
        signal.signal(sig, previous)
    assert seen == [sig]
    assert (tmp_path / "ckpt.json").read_text() == "partial done\n" and temps(tmp_path) == []
