"""``fastbert.serve.deployment`` on a local Ray instance (2 CPUs, one replica, a few requests): the replica
answers what the in-process server answers."""

from __future__ import annotations

import os
import socket

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
        app = deployment.options(num_replicas=1, ray_actor_options={"num_cpus": 1}).bind(
            ServeOptions(model=tiny["base"], threads=1)
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
