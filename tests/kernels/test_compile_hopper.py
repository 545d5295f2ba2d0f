"""The kernels compile for an H100/H200 (sm_90) as launched, without a GPU (see hopper_compile.py).

Against the installed triton and, when ``FASTBERT_TRITON36`` names a folder holding triton 3.6 (the
oldest supported, the device's: ``pip install --target DIR --no-deps triton==3.6.0``), against that
one too. ``FASTBERT_HOPPER_FULL=1`` adds bf16, the causal and the unmasked padded variants (see hopper_compile.py). Fails on compile errors, register spills, shared memory over Hopper's limit, approximate fp32
division/square root, and lengths that would compile a second binary.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
TRITON36 = os.environ.get("FASTBERT_TRITON36", "")


def _has_nvidia_backend() -> bool:
    try:
        from triton.backends.nvidia import compiler  # noqa: F401
    except Exception:
        return False
    return True


@pytest.mark.slow
@pytest.mark.skipif(
    not _has_nvidia_backend(), reason="triton without its NVIDIA backend cannot compile for sm_90"
)
@pytest.mark.parametrize("triton_install", ["installed", "3.6"])
def test_kernels_compile_for_sm90(triton_install, tmp_path):
    paths = [str(HERE.parents[1])]
    if triton_install == "3.6":
        if not TRITON36 or not (Path(TRITON36) / "triton").is_dir():
            pytest.skip("FASTBERT_TRITON36 does not name a folder with triton 3.6 (pip install --target)")
        paths.insert(0, TRITON36)
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "FASTBERT_KERNEL_CONFIG")}
    env["TRITON_CACHE_DIR"] = str(tmp_path / "triton-cache")
    env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, str(HERE / "hopper_compile.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = proc.stdout + proc.stderr[-3000:]
    assert proc.returncode == 0, out
    if triton_install == "3.6":
        assert "triton 3.6." in proc.stdout, out[:500]
