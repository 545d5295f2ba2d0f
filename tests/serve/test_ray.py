"""``fastbert.serve.deployment`` on a local Ray instance (2 CPUs, one replica, a few requests): the replica
answers what the in-process server answers; ``fastbert serve --ray`` drains what is in flight on SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from serve_helpers import httpx, serving

ray = pytest.importorskip(
    "ray", reason="ray[serve] is not installed (pip install 'fastbert-triton[serve-ray]')"
)
pytest.importorskip(
    "ray.serve", reason="ray[serve] is not installed (pip install 'fastbert-triton[serve-ray]')"
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEXTS = ["the cat is green", "john lives in new york", "a"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_deployment_on_local_ray(tiny):
    from ray import serve

    from fastbert.serve import ServeOptions, deployment

    with serving(model=tiny["base"]) as local:
        want = local.client.post("/embed", json={"inputs": TEXTS}).json()
    env = {"PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), "HF_HUB_OFFLINE": "1"}
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        runtime_env={"env_vars": env},
        log_to_driver=False,
        configure_logging=False,
    )
    try:
        port = _free_port()
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        # on the CPU, as the reference: a replica without num_gpus still sees the machine's GPUs (Ray
        # leaves CUDA_VISIBLE_DEVICES alone then), and would take cuda:0 in float16
        app = deployment.options(num_replicas=1, ray_actor_options={"num_cpus": 1}).bind(
            ServeOptions(model=tiny["base"], threads=1, devices=("cpu",))
        )
        serve.run(app, name="fastbert", route_prefix="/")
        url = f"http://127.0.0.1:{port}"
        got = httpx.post(url + "/embed", json={"inputs": TEXTS}, timeout=60)
        assert got.status_code == 200, got.text
        np.testing.assert_allclose(np.asarray(got.json()), np.asarray(want), atol=1e-6, rtol=0)
        info = httpx.get(url + "/info", timeout=60).json()
        assert info["model_type"] == {"embedding": {"pooling": "cls"}}  # no pooling config: TEI's cls
        r = httpx.post(url + "/embed", json={"inputs": 5}, timeout=60)
        assert r.status_code == 422 and r.json()["error_type"] == "Validation"
    finally:
        serve.shutdown()
        ray.shutdown()


def test_the_deployment_class_serves_without_a_cluster(tiny):
    """The replica's class, without Ray: its constructor (CPU without CUDA) and the ASGI app it builds for
    Ray Serve (``__serve_build_asgi_app__``) answer as the in-process server, workers started and stopped
    by the app's lifespan."""
    import torch
    from starlette.testclient import TestClient

    from fastbert.serve import ServeOptions, deployment

    with serving(model=tiny["base"]) as local:
        want = local.client.post("/embed", json={"inputs": TEXTS}).json()
    # the class as written: Ray's ingress wraps it (an async constructor that Ray's replica awaits)
    cls = next(c for c in deployment.func_or_class.__mro__ if "__serve_build_asgi_app__" in vars(c))
    default = cls(ServeOptions(model=tiny["base"], threads=1))
    assert default.options.devices == (("cuda:0",) if torch.cuda.is_available() else ("cpu",))
    replica = cls(ServeOptions(model=tiny["base"], threads=1, devices=("cpu",)))  # as the reference
    assert replica.options.devices == ("cpu",)
    app = replica.__serve_build_asgi_app__()
    with TestClient(app, base_url="http://127.0.0.1") as client:
        got = client.post("/embed", json={"inputs": TEXTS})
        assert got.status_code == 200, got.text
        np.testing.assert_allclose(np.asarray(got.json()), np.asarray(want), atol=1e-6, rtol=0)
        r = client.post("/embed", json={"inputs": 5})
        assert r.status_code == 422 and r.json()["error_type"] == "Validation"
        assert app.server.batcher.alive()
    assert not app.server.batcher.alive()  # the lifespan's end stopped the workers


@pytest.mark.parametrize("devices", [("cuda:1",), ("cuda:3",)])
def test_a_gpu_other_than_the_replicas_own_is_refused(devices):
    """A replica sees the one GPU Ray gives it, as cuda:0: --devices 1 (cuda:1) cannot be honoured there
    and is refused in the driver, before anything is deployed."""
    from fastbert.serve import ServeOptions
    from fastbert.serve.ray_serve import replicas_for

    with pytest.raises(ValueError, match=rf"--devices {devices[0]}: a Ray replica sees only the GPU"):
        replicas_for(ServeOptions(devices=devices), {"CPU": 8.0, "GPU": 4.0}, None)
    for fine in (("cuda",), ("cuda:0",), None):
        assert replicas_for(ServeOptions(devices=fine), {"CPU": 8.0, "GPU": 4.0}, None) == (
            4,
            {"num_gpus": 1, "num_cpus": 1},
        )


# ``fastbert serve --ray`` as a process whose replicas' forwards wait for a file: an import hook (a
# sitecustomize on the PYTHONPATH the local Ray instance's workers inherit) wraps ServedModel.run
HOLD_FORWARDS = """
import importlib.abc, importlib.util, os, sys, time

GATE = os.environ.get("FASTBERT_TEST_GATE")


class _Hold(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "fastbert.serve.engine":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        exec_module = spec.loader.exec_module

        def exec_and_hold(module):
            exec_module(module)
            run = module.ServedModel.run

            def held(self, rows, ops):
                open(GATE + ".entered", "a").close()
                while not os.path.exists(GATE):
                    time.sleep(0.02)
                return run(self, rows, ops)

            module.ServedModel.run = held

        spec.loader.exec_module = exec_and_hold
        return spec


if GATE:
    sys.meta_path.insert(0, _Hold())
"""


def test_sigterm_drains_the_requests_in_flight(tiny, tmp_path):
    """``fastbert serve --ray --max-concurrent-requests 6`` with 3 requests of 2 inputs held in the replica
    (a permit per input, as TEI: all 6 taken): a 4th is answered 429 (Ray Serve hands the replica more than
    3 requests, ray_limits); then SIGTERM: the 3 are answered
    (serve.delete drains the application; serve.shutdown dropped their connections at once before), the
    driver exits, and none of the processes of the Ray instance it started outlives it."""
    import psutil
    from serve_helpers import child_env, default_signals

    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(HOLD_FORWARDS)
    gate = tmp_path / "gate"
    env = child_env()
    env["PYTHONPATH"] = os.pathsep.join([str(hook), ROOT, env.get("PYTHONPATH", "")])
    env["FASTBERT_TEST_GATE"] = str(gate)
    env.pop("RAY_ADDRESS", None)
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "fastbert", "serve", "--ray", "--port", str(port), "--threads", "1"]
        + ["--model", tiny["base"], "--max-concurrent-requests", "6", "--devices", "cpu"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=default_signals,
    )
    family: set[int] = set()
    try:
        line = ""
        while "listening on" not in line:
            line = proc.stderr.readline()
            assert line, f"no startup line: {proc.stderr.read()}"
        family = {p.pid for p in psutil.Process(proc.pid).children(recursive=True)}
        url = f"http://127.0.0.1:{port}"
        results: list = []

        def send(k: int) -> None:
            try:
                r = httpx.post(url + "/embed", json={"inputs": [f"the cat {k}", "a dog"]}, timeout=120)
                results.append(r.status_code)
            except httpx.HTTPError as e:
                results.append(repr(e))

        clients = [threading.Thread(target=send, args=(k,)) for k in range(3)]
        for c in clients:
            c.start()
        deadline = time.monotonic() + 120
        while not os.path.exists(str(gate) + ".entered"):  # a forward holds them in the replica
            assert time.monotonic() < deadline, "no forward started"
            time.sleep(0.05)
        while time.monotonic() < deadline:  # the three are in the replica's app
            metrics = httpx.get(url + "/metrics", timeout=60).text
            if re.search(r"^te_requests_in_flight 3\.0$", metrics, re.M):
                break
            time.sleep(0.05)
        r = httpx.post(url + "/embed", json={"inputs": "one too many"}, timeout=60)
        assert r.status_code == 429 and r.json()["error_type"] == "Overloaded", r.text
        proc.send_signal(signal.SIGTERM)
        time.sleep(2)  # (serve.shutdown had closed the connections by now)
        gate.touch()
        for c in clients:
            c.join(120)
        assert results == [200] * 3
        assert proc.wait(120) == 0  # (as the plain server, and TEI)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(_alive(pid) for pid in family):
            time.sleep(0.2)
        assert not [pid for pid in family if _alive(pid)]
    finally:
        gate.touch()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in family:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
