"""Fixtures of the kernel tests; helpers and the tolerance rule live in kernel_checks.py."""

import pytest
from kernel_checks import DEVICE


@pytest.fixture
def device() -> str:
    return DEVICE
