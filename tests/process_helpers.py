"""Child processes that a test sends signals to.

A child inherits its parent's ignored signal dispositions through ``exec``: a shell without job control starts
background jobs (``cmd &``) with SIGINT and SIGQUIT ignored, and ``nohup`` ignores SIGHUP. Python started with
SIGINT ignored installs no ``KeyboardInterrupt`` handler, so a test that interrupts its child would see the
child go on (and time out) or finish. ``Popen(..., preexec_fn=default_signals)`` gives the child the default
disposition of every signal a test sends, whatever the machine and the shell that started pytest.
"""

from __future__ import annotations

import signal

# the signals tests send to their children (SIGKILL cannot be ignored)
SIGNALS = (
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGTERM,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGALRM,
)


def default_signals() -> None:
    """In the child, between fork and exec: every signal of ``SIGNALS`` back to its default disposition."""
    for sig in SIGNALS:
        signal.signal(sig, signal.SIG_DFL)


def _fresh_process_threads() -> int:
    import torch

    return torch.get_num_threads()


#: torch's intra-op threads in a fresh process (what CLI children run with), read when the test modules are
#: collected, before any test can change them (an in-process server fixture sets its own count while it lives)
FRESH_PROCESS_THREADS = _fresh_process_threads()
