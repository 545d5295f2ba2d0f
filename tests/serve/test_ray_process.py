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

FAKE_RAY = """
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

FAKE_SERVE = """
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


def run(app, name=None, route_prefix=None, **kwargs):
    log("run", name)
    if SCENARIO.get("run") == "hang":  # a replica that is never scheduled
        while True:
            time.sleep(0.05)


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
    ("head", "stopped_by"), [(True, signal.SIGTERM), (False, signal.SIGTERM), (False, signal.SIGINT)]
)
def test_stopping_deletes_only_the_fastbert_application(fake_ray, tiny, head, stopped_by):
    """On a Ray instance the driver joined (``--ray-address``, another team's applications on it) only the
    ``fastbert`` application is deleted, which drains it; Serve is shut down only where the driver started
    Ray itself (serve.shutdown() deletes every application of the cluster)."""
    proc = _serve_ray(fake_ray, {"head": head}, "--model", tiny["base"])
    try:
        calls = _calls(proc, until="run")
        _listening(proc)
        proc.send_signal(stopped_by)
        proc.wait(60)
        calls += _calls(proc)
        names = [c[0] for c in calls]
        assert names[names.index("run") + 1 :][:2] == (["delete", "shutdown"] if head else ["delete"])
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
