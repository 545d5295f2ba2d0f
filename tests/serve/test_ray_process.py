"""``fastbert serve --ray`` as a process, against a stand-in for Ray (``ray`` and ``ray.serve`` modules that
log each call on stdout as a JSON line): what the driver asks of Ray, in which order, and how it ends. The
real Ray Serve is exercised in test_ray.py."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

import pytest
from serve_helpers import child_env, default_signals

FAKE_RAY = r"""
import json, os, sys
SCENARIO = json.loads(os.environ.get("FAKE_RAY", "{}"))


def log(*call):
    print(json.dumps(call, default=str), flush=True)


class _Worker:
    _global_node = None


class _Node:
    head = SCENARIO.get("head", True)


class _private:
    worker = _Worker


def init(address=None, **kwargs):
    log("init", address)
    _Worker._global_node = _Node()


def cluster_resources():
    return SCENARIO.get("resources", {"CPU": 2.0})


def shutdown():
    log("ray.shutdown")
"""

FAKE_SERVE = r"""
import time
from ray import SCENARIO, log


class _Deployment:
    def __init__(self, cls, kwargs):
        self.cls, self.kwargs = cls, kwargs

    def options(self, **kwargs):
        log("options", kwargs)
        return self

    def bind(self, *args):
        return ("app", args)


def deployment(**kwargs):
    return lambda cls: _Deployment(cls, kwargs)


def ingress(*args, **kwargs):
    return lambda cls: cls


def start(**kwargs):
    log("start", kwargs)
    if SCENARIO.get("start") == "busy":  # as Ray words it: the proxy actor's remote traceback
        raise RuntimeError(
            "\x1b[36mray::ProxyActor.ready()\x1b[39m (pid=1, ip=127.0.0.1)\n"
            "  File 'http_util.py', line 786, in start_asgi_http_server\n    raise RuntimeError(\n"
            "RuntimeError: Failed to bind to address '127.0.0.1:8123'."
        )


RAN = []


def run(app, name=None, route_prefix=None, **kwargs):
    log("run", name)
    RAN.append(name)
    if SCENARIO.get("run") == "hang":  # a replica that is never scheduled
        while True:
            time.sleep(0.05)
    if SCENARIO.get("run") == "fail":
        raise RuntimeError(
            "Deploying application fastbert failed: Failed to update the deployments ['fastbert']."
        )


class _Status:
    message = ""
    deployments = {
        "fastbert": type("D", (), {"message": (
            "The deployment failed to start 3 times in a row. See controller logs for details. Error:\n"
            "Traceback (most recent call last):\n  File 'replica.py', line 1, in init\n"
            "OSError: the weights of /m are not a safetensors file"
        )})()
    }


def status():
    names = SCENARIO.get("applications", []) + RAN  # (another driver's, on a cluster this one joined)
    return type("S", (), {"applications": {name: _Status() for name in names}})()


def delete(name, _blocking=True):
    log("delete", name)


def shutdown():
    log("shutdown")
"""


@pytest.fixture(scope="module")
def fake_ray(tmp_path_factory):
    root = tmp_path_factory.mktemp("fake-ray")
    (root / "ray" / "serve").mkdir(parents=True)
    (root / "ray" / "__init__.py").write_text(FAKE_RAY)
    (root / "ray" / "serve" / "__init__.py").write_text(FAKE_SERVE)
    return str(root)


def _serve_ray(fake_ray, scenario: dict, *args: str, preexec=default_signals) -> subprocess.Popen:
    env = child_env()
    env["PYTHONPATH"] = fake_ray + os.pathsep + env["PYTHONPATH"]
    env["FAKE_RAY"] = json.dumps(scenario)
    env.pop("RAY_ADDRESS", None)
    return subprocess.Popen(
        [sys.executable, "-m", "fastbert", "serve", "--ray", "--port", "8123", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=preexec,
    )


def _calls(proc: subprocess.Popen, until: str | None = None) -> list:
    """The Ray calls the driver logged: up to the first ``until`` call, else all of them (it ended)."""
    calls = []
    for line in proc.stdout:
        calls.append(json.loads(line))
        if calls[-1][0] == until:
            return calls
    assert until is None, f"no {until!r} call: {calls} {proc.stderr.read()}"
    return calls


def _listening(proc: subprocess.Popen) -> None:
    line = proc.stderr.readline()
    assert re.search(r"listening on http://127\.0\.0\.1:8123 \(Ray Serve", line), line + proc.stderr.read()


@pytest.mark.parametrize(
    ("head", "stopped_by", "status"),
    [
        (True, signal.SIGTERM, 0),
        (False, signal.SIGTERM, 0),
        (False, signal.SIGINT, 130),
    ],
)
def test_stopping_deletes_only_the_fastbert_application(fake_ray, tiny, head, stopped_by, status):
    """On a Ray instance the driver joined (``--ray-address``, another team's applications on it) only the
    ``fastbert`` application is deleted, which drains it; Serve is shut down only where the driver started
    Ray itself (serve.shutdown() deletes every application of the cluster). The process ends as the plain
    server does: 0 after SIGTERM, 130 after Ctrl-C."""
    proc = _serve_ray(fake_ray, {"head": head}, "--model", tiny["base"])
    try:
        calls = _calls(proc, until="run")
        _listening(proc)
        proc.send_signal(stopped_by)
        assert proc.wait(60) == status
        calls += _calls(proc)
        names = [c[0] for c in calls]
        after = [n for n in names[names.index("run") + 1 :] if n != "ray.shutdown"]  # (the driver's own)
        assert after == (["delete", "shutdown"] if head else ["delete"])
        assert ["delete", "fastbert"] in calls and names.count("delete") == 1
        assert ("shutdown" in names) == head
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_max_concurrent_requests_sets_ray_serves_limits(fake_ray, tiny):
    """--max-concurrent-requests N on Ray: a replica is handed up to 2N requests (its app answers those past
    N 429, as the plain server), and each proxy queues at most N (Ray's 503 past them). Before, a fixed
    max_ongoing_requests of 64 hid the app's limit above 64 and Ray's queue had no bound."""
    proc = _serve_ray(fake_ray, {}, "--model", tiny["base"], "--max-concurrent-requests", "100")
    try:
        calls = _calls(proc, until="run")
        (options,) = [c[1] for c in calls if c[0] == "options"]
        assert options["max_ongoing_requests"] == 200 and options["max_queued_requests"] == 100, options
    finally:
        proc.kill()
        proc.wait()


def _refused(fake_ray, scenario: dict, *args: str) -> tuple[str, list]:
    """(stderr, Ray calls) of a ``fastbert serve --ray`` that must end with one error line and exit 2."""
    proc = _serve_ray(fake_ray, scenario, *args)
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines = err.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("fastbert serve: error: "), err
    return lines[0], [json.loads(x) for x in out.splitlines()]


def test_a_model_or_option_a_replica_would_refuse_is_refused_before_ray_starts(fake_ray, tiny, tmp_path):
    """One line and exit 2, as without --ray, and before Ray starts (a replica's refusal was a 35-line
    traceback without its cause, after half a minute)."""
    line, calls = _refused(fake_ray, {}, "--model", str(tmp_path / "missing"))
    assert "missing" in line and calls == []
    line, calls = _refused(fake_ray, {}, "--model", tiny["base"], "--max-batch-tokens", "8")
    assert "--max-batch-tokens 8" in line and calls == []
    # --port 0: the proxies took a port of their own, and the driver said it listened on ":0"
    line, calls = _refused(fake_ray, {}, "--model", tiny["base"], "--port", "0")
    assert "--port 0" in line and calls == [], (line, calls)


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (
            ("--quantization", "int8", "--dtype", "bfloat16"),
            "--quantization int8 on the CPU computes from float32 weights, and --dtype is bfloat16",
        ),
        (("--quantization", "fp8"), "--quantization fp8 on cpu: "),
    ],
)
def test_a_precision_cpu_replicas_cannot_run_is_refused_before_deploying(fake_ray, tiny, args, said):
    """--quantization with a --dtype (or on a device) the CPU replicas cannot run: the plain server's
    one-line refusal in the flags' terms, before anything is deployed (it was deployed, and each replica
    refused it in its constructor: a Ray error after the replicas' retries, or no error at all where the
    deployment did not wait for them)."""
    line, calls = _refused(fake_ray, {"resources": {"CPU": 2.0}}, "--model", tiny["base"], *args)
    assert said in line, line
    assert "run" not in [c[0] for c in calls] and "start" not in [c[0] for c in calls], calls
    # --devices cpu names the replicas' device: refused before Ray starts
    line, calls = _refused(fake_ray, {}, "--model", tiny["base"], "--devices", "cpu", *args)
    assert said in line and calls == [], (line, calls)


def test_int8_from_bfloat16_is_left_to_gpu_replicas(fake_ray, tiny):
    """On a cluster with GPUs the replicas run on CUDA, where int8 takes bfloat16 weights: not refused."""
    proc = _serve_ray(
        fake_ray,
        {"resources": {"CPU": 2.0, "GPU": 1.0}},
        "--model",
        tiny["base"],
        "--quantization",
        "int8",
        "--dtype",
        "bfloat16",
    )
    try:
        calls = _calls(proc, until="run")
        (options,) = [c[1] for c in calls if c[0] == "options"]
        assert options["ray_actor_options"]["num_gpus"] == 1, options
    finally:
        proc.kill()
        proc.wait()


def test_replicas_that_cannot_be_placed_are_refused(fake_ray, tiny):
    """Ray Serve waits without a word for replicas the cluster cannot place: refused, saying what fits."""
    line, calls = _refused(
        fake_ray, {"resources": {"CPU": 2.0}}, "--model", tiny["base"], "--ray-replicas", "3"
    )
    assert "--ray-replicas 2 or fewer" in line and "2 CPUs" in line, line
    assert "run" not in [c[0] for c in calls]
    line, calls = _refused(
        fake_ray, {"resources": {"CPU": 2.0}}, "--model", tiny["base"], "--devices", "cuda:0"
    )
    assert "no GPU" in line, line


@pytest.mark.parametrize(
    ("scenario", "said"),
    [
        ({"run": "fail"}, "OSError: the weights of /m are not a safetensors file"),
        ({"start": "busy"}, "Failed to bind to address '127.0.0.1:8123'"),
    ],
)
def test_a_failed_deployment_is_one_line_with_its_cause(fake_ray, tiny, scenario, said):
    line, calls = _refused(fake_ray, scenario, "--model", tiny["base"])
    assert said in line, line
    names = [c[0] for c in calls]
    assert names[-1] == "shutdown"  # (Serve of the Ray instance it started is shut down)


@pytest.mark.parametrize(("stopped_by", "status"), [(signal.SIGTERM, 0), (signal.SIGINT, 130)])
def test_a_signal_while_the_deployment_waits_stops_cleanly(fake_ray, tiny, stopped_by, status):
    """SIGTERM while serve.run waits (for a replica never scheduled): the driver's handler is in place
    (it was installed after serve.run, so Ray's fatal-signal handler aborted with a stack dump)."""
    proc = _serve_ray(fake_ray, {"run": "hang"}, "--model", tiny["base"])
    try:
        _calls(proc, until="run")
        proc.send_signal(stopped_by)
        assert proc.wait(60) == status
        names = [c[0] for c in _calls(proc)]
        assert names[:2] == ["delete", "shutdown"], names
        assert "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _ignore_sigint() -> None:
    default_signals()
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def test_sigint_stops_it_when_started_as_a_background_job(fake_ray, tiny):
    """``fastbert serve --ray &`` in a script inherits SIGINT ignored: it still stops on SIGINT."""
    proc = _serve_ray(fake_ray, {}, "--model", tiny["base"], preexec=_ignore_sigint)
    try:
        _calls(proc, until="run")
        _listening(proc)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_graceful_shutdown_timeout_is_the_replicas_drain(fake_ray, tiny):
    """--graceful-shutdown-timeout is also how long a Ray replica being stopped waits for what it holds
    (Ray's own default, 20 s, cut the drain there)."""
    for given, want in (("90", 90.0), ("0", 365 * 24 * 3600.0)):
        proc = _serve_ray(fake_ray, {}, "--model", tiny["base"], "--graceful-shutdown-timeout", given)
        try:
            (options,) = [c[1] for c in _calls(proc, until="run") if c[0] == "options"]
            assert options["graceful_shutdown_timeout_s"] == want, options
        finally:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("flag", [["--ray-replicas", "2"], ["--ray-address", "auto"]])
def test_a_ray_option_without_ray_is_refused(tmp_path, flag):
    """``--ray-replicas`` / ``--ray-address`` without ``--ray``: the plain server started and the flag was
    ignored without a word; refused in one line (exit 2) before the model loads, as ``fastbert embed``
    refuses ``--ray-actors`` without ``--ray``."""
    env = child_env()
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.run(
        [sys.executable, "-m", "fastbert", "serve", "--model", str(tmp_path / "missing"), *flag],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert f"{flag[0]} is an option of --ray" in lines[0], lines[0]


def test_a_fastbert_application_already_on_the_cluster_is_left_alone(fake_ray, tiny):
    """A second ``fastbert serve --ray`` on a cluster the first one's application runs on: serve.run
    replaced that application with its own, and its stop then deleted it. Refused, and nothing of the
    cluster's is deployed, deleted or shut down."""
    line, calls = _refused(fake_ray, {"head": False, "applications": ["fastbert"]}, "--model", tiny["base"])
    assert "already runs a fastbert application" in line, line
    names = [c[0] for c in calls]
    assert "run" not in names and "delete" not in names and "shutdown" not in names, calls
