"""``fastbert serve`` as a process: the startup line, SIGTERM under load (what is in flight is answered, then
the process exits 0), a model folder that does not load (one line, exit 2), and fastbert without the [serve] extra."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time

from serve_helpers import child_env, default_signals, httpx

HIDE_FASTAPI = "import sys; sys.modules['fastapi'] = None; "
#: the servers these tests start run on the CPU, as serving()'s: without --devices a server takes the GPU
#: where there is one (the startup line is checked to say device=cpu)
ON_CPU = ("--devices", "cpu")
STARTUP = re.compile(r"listening on (http://127\.0\.0\.1:\d+) .* device=cpu ")


def _start(*args: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "fastbert", "serve", "--port", "0", "--threads", "1", *ON_CPU, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
        preexec_fn=default_signals,
    )
    line = proc.stderr.readline()  # the one startup line (blocks until the model is loaded)
    m = STARTUP.search(line)
    if not m:
        proc.kill()
        raise AssertionError(f"no startup line: {line!r} {proc.stderr.read()}")
    return proc, m.group(1)


def test_sigterm_answers_what_is_in_flight(tiny):
    """SIGTERM under load: requests in flight are answered, among them one whose body is still arriving
    when the signal comes (deterministically in flight); then the process ends."""
    proc, url = _start("--model", tiny["base"], "--max-batch-tokens", "64")
    try:
        assert httpx.get(url + "/health", timeout=30).status_code == 200
        texts = [" ".join(["the cat"] * 30)] * 32  # 32 inputs of 62 tokens: one forward each (budget 64)
        results: list = []

        def send() -> None:
            try:
                r = httpx.post(url + "/embed", json={"inputs": texts}, timeout=60)
                results.append(r.status_code)
            except httpx.HTTPError as e:
                results.append(repr(e))

        # a request whose headers and half its body are in: the server is handling it
        body = json.dumps({"inputs": ["the sun", "a green leaf"]}).encode()
        host, port = url.removeprefix("http://").split(":")
        slow = socket.create_connection((host, int(port)), timeout=60)
        slow.sendall(
            b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body[:10]
        )
        threads = [threading.Thread(target=send) for _ in range(6)]
        for t in threads:
            t.start()
        # wait until each of the six is answered or in flight (its body read: te_requests_in_flight); the
        # answers are counted before the gauge is read, so a request finishing in between is counted in
        # neither, never in both
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            done = len(results)
            metrics = httpx.get(url + "/metrics", timeout=30).text
            m = re.search(r"^te_requests_in_flight (\S+)", metrics, re.M)
            if m and done + float(m.group(1)) >= 6:  # (the slow one is not counted: its body is not in)
                break
            time.sleep(0.01)
        else:
            raise AssertionError(f"the six requests never got in: {results}")
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        slow.sendall(body[10:])  # the rest of the body, after the signal
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = slow.recv(65536)
            assert chunk, f"connection closed: {answer!r}"
            answer += chunk
        slow.close()
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
        for t in threads:
            t.join(60)
        assert results == [200] * 6
        # then it exits 0, as TEI: a graceful shutdown is no failure (uvicorn re-raised the SIGTERM after
        # it, and the process was killed by it: 143 in a shell, an error in Docker and Kubernetes)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _held_server(tiny, gate, *args: str) -> tuple[subprocess.Popen, str]:
    """``fastbert serve`` whose forwards print ``forward`` on stdout and then wait until the file ``gate``
    exists: a request is in flight for as long as the test wants, on any machine."""
    code = (
        "import os, sys, time; from fastbert.serve import engine\n"
        "def run(self, rows, ops):\n"
        "    print('forward', flush=True)\n"
        f"    while not os.path.exists({str(gate)!r}):\n"
        "        time.sleep(0.02)\n"
        "    return [None] * len(rows)\n"
        "engine.ServedModel.run = run\n"
        "from fastbert.cli import main\n"
        f"sys.exit(main(['serve', '--model', {tiny['base']!r}, '--port', '0', '--threads', '1', *{ON_CPU + args!r}]))\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
        preexec_fn=default_signals,
    )
    line = proc.stderr.readline()
    m = STARTUP.search(line)
    if not m:
        proc.kill()
        raise AssertionError(f"no startup line: {line!r} {proc.stderr.read()}")
    return proc, m.group(1)


def _cut_at_shutdown(tiny, tmp_path, args: tuple[str, ...], signals: tuple[int, ...], status: int) -> None:
    """One request held in its forward, then ``signals`` (each after the server stopped listening): the
    request is answered TEI's 503 body, the server exits with ``status``, and stderr holds no traceback."""
    gate = tmp_path / "gate"
    proc, url = _held_server(tiny, gate, *args)
    try:
        answers: list = []

        def send() -> None:
            try:
                answers.append(httpx.post(url + "/embed", json={"inputs": "the cat"}, timeout=60))
            except httpx.HTTPError as e:
                answers.append(repr(e))

        client = threading.Thread(target=send)
        client.start()
        assert proc.stdout.readline().strip() == "forward"
        host, port = url.removeprefix("http://").split(":")
        for sig in signals:
            proc.send_signal(sig)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # the shutdown began: the listening socket is closed
                try:
                    socket.create_connection((host, int(port)), timeout=5).close()
                except OSError:
                    break
                time.sleep(0.05)
            else:
                raise AssertionError("the server kept listening after the signal")
        client.join(60)
        (answer,) = answers
        assert not isinstance(answer, str), answer
        assert answer.status_code == 503, answer.text
        assert answer.json()["error_type"] == "Unhealthy" and "shutting down" in answer.json()["error"]
        try:  # the worker's forward is waited for (a thread left in a forward at exit: SIGABRT)
            proc.wait(3)
        except subprocess.TimeoutExpired:
            pass
        assert proc.poll() is None, (proc.returncode, proc.stderr.read())
        gate.touch()  # the forward ends; the server stops its workers and exits
        assert proc.wait(60) == status
        err = proc.stderr.read()
        assert "Traceback" not in err and "Exception in ASGI application" not in err, err
    finally:
        gate.touch()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_requests_cut_by_the_graceful_shutdown_timeout_get_503(tiny, tmp_path):
    """--graceful-shutdown-timeout: what still runs then is answered TEI's 503 (a plain-text 500 and a
    traceback per request before), and the process exits 0, as after any SIGTERM."""
    _cut_at_shutdown(tiny, tmp_path, ("--graceful-shutdown-timeout", "0.5"), (signal.SIGTERM,), 0)


def test_a_second_ctrl_c_answers_503_and_exits_130_quietly(tiny, tmp_path):
    _cut_at_shutdown(tiny, tmp_path, (), (signal.SIGINT, signal.SIGINT), 130)


def _ignore_sigint() -> None:
    """preexec_fn of a background job of a non-interactive shell: SIGINT ignored, SIGTERM/SIGHUP default."""
    default_signals()
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def test_sigint_while_the_model_loads_exits_130_even_if_inherited_ignored(tiny):
    """`fastbert serve &` from a script inherits SIGINT ignored: serve resets it, so a SIGINT while the
    model loads (held here until the signal) exits 130 instead of being lost."""
    code = (
        "import sys, time; import fastbert.serve.app as app\n"
        "def load(options):\n"
        "    print('loading', flush=True)\n"
        "    time.sleep(60)\n"
        "    raise SystemExit('the SIGINT was lost')\n"
        "app.load = load\n"
        "from fastbert.cli import main\n"
        f"sys.exit(main(['serve', '--model', {tiny['base']!r}, '--port', '0']))\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
        preexec_fn=_ignore_sigint,
    )
    try:
        assert proc.stdout.readline().strip() == "loading", proc.stderr.read()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 130, proc.stderr.read()
        assert "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_model_that_does_not_load(tmp_path, capsys):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": "big"}))
    r = subprocess.run(
        [sys.executable, "-m", "fastbert", "serve", "--model", str(tmp_path), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
        env=child_env(),
        preexec_fn=default_signals,
    )
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastbert serve: error:") and "hidden_size" in lines[0], (
        r.stderr
    )
    # the same through the CLI in this process: a folder that is not there
    from fastbert.cli import main

    assert main(["serve", "--model", str(tmp_path / "missing"), "--port", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fastbert serve: error:") and "missing" in err[0]


def test_import_and_cli_without_the_serve_extra():
    code = HIDE_FASTAPI + (
        "import fastbert, fastbert.serve; from fastbert.cli import main; "
        "assert 'fastapi' not in [m for m, v in sys.modules.items() if v is not None]; sys.exit(main(['serve']))"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=child_env()
    )
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip() == (
        "fastbert serve: error: fastapi is not installed: pip install fastapi uvicorn prometheus_client pydantic "
        "orjson (the [serve] extra: pip install '.[serve]' in a checkout of fastbert; fastbert-triton is not on "
        "PyPI)"
    )  # packages PyPI has, never the distribution's name, which it has not
    r = subprocess.run(
        [sys.executable, "-c", "import sys, fastbert; sys.exit('fastapi' in sys.modules)"],
        capture_output=True,
        timeout=120,
        env=child_env(),
    )
    assert r.returncode == 0


def test_create_app_and_deployment_without_their_extra_name_it():
    """``from fastbert.serve import create_app`` / ``deployment`` without the extra: an ImportError saying
    what to install (it was Python's bare 'No module named ...')."""
    for hidden, name, said in (
        ("fastapi", "create_app", "fastapi is missing): pip install fastapi uvicorn"),
        (
            "prometheus_client",
            "create_app",
            "prometheus_client is missing): pip install fastapi uvicorn",
        ),
        ("ray", "deployment", "ray is missing): pip install 'ray[serve]' fastapi"),
        # (ray.serve: "ray is missing" on a machine without ray)
        ("ray.serve", "deployment", " is missing): pip install 'ray[serve]' fastapi"),
    ):
        code = (
            f"import sys; sys.modules[{hidden!r}] = None\n"
            "try:\n"
            f"    from fastbert.serve import {name}\n"
            "except ImportError as e:\n"
            "    print(type(e).__name__, e)\n"
        )
        r = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=child_env()
        )
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith(f"ImportError fastbert.serve.{name} needs "), r.stdout
        assert said in r.stdout and r.stdout.strip().endswith("fastbert-triton is not on PyPI)"), r.stdout


def test_a_port_already_in_use_is_one_line_and_exit_2(tiny, capsys):
    from fastbert.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = ["serve", "--model", tiny["base"], "--host", "127.0.0.1", "--port", str(port), *ON_CPU]
        assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"fastbert serve: error: cannot listen on 127.0.0.1:{port}: Address already in use", err


def test_a_device_this_machine_lacks_is_one_line_and_exit_2(tiny, capsys):
    """--devices naming a CUDA GPU this machine has not (any machine: one past its GPUs), or no device at
    all: one line naming --devices, exit 2 (torch's AssertionError / RuntimeError traceback before)."""
    import torch

    from fastbert.cli import main

    missing = f"cuda:{torch.cuda.device_count() + 7}"
    for device, said in ((missing, f"--devices '{missing}': "), ("tpu", "--devices 'tpu' is not a device")):
        assert main(["serve", "--model", tiny["base"], "--port", "0", "--devices", device]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"fastbert serve: error: {said}"), err
