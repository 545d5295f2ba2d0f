"""Interleaved timing and the one time budget of a run.

Providers of a row take turns: each round calls every provider once, in a fresh random order, so that
machine drift (thermal, other processes, frequency) lands on all of them alike. The speed-up of a
provider over the baseline is the median of the per-round ratios ``baseline_time / provider_time``; its
spread is the interquartile range of those ratios. First calls (compile, autotune, graph capture) and
warm-up calls are never timed with the repeats.

The :class:`Budget` is the single place where a run's time limit is checked: between calls of a row
(:meth:`Budget.fits`), and around calls that cannot be split (a first call that compiles) through
``SIGALRM`` (:meth:`Budget.alarm`), so a row that would overrun is cut, not only the rows after it.
"""

from __future__ import annotations

import contextlib
import math
import random
import signal
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch


class BudgetSpent(BaseException):
    """Raised inside a row when the run's time budget is spent (from ``SIGALRM``, anywhere in the call).

    A ``BaseException``, as ``KeyboardInterrupt`` is: the ``except Exception`` blocks of the code under test
    must let it through (fastbert's default CUDA-graph runner falls back to the normal forward on an
    ``Exception``: a limit firing in a capture made the row time the fallback as "ok"). Where a library turns
    it into its own error (Dynamo, Inductor: ``BackendCompilerFailed``), :func:`budget_spent_in` finds it in
    the chain."""


def budget_spent_in(err: BaseException | None) -> bool:
    """Whether ``err`` is :class:`BudgetSpent` or was raised from one (``__cause__`` / ``__context__``)."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, BudgetSpent):
            return True
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return False


class Budget:
    """Seconds left of a run (``None``: no limit)."""

    def __init__(self, seconds: float | None, clock: Callable[[], float] = time.perf_counter):
        self.seconds = seconds
        self.clock = clock
        self.start = clock()

    def elapsed(self) -> float:
        return self.clock() - self.start

    def remaining(self) -> float:
        return math.inf if self.seconds is None else self.seconds - self.elapsed()

    @property
    def spent(self) -> bool:
        return self.remaining() <= 0

    def fits(self, seconds: float) -> bool:
        """Whether ``seconds`` more of work end before the budget does."""
        return seconds <= self.remaining()

    @contextlib.contextmanager
    def alarm(self) -> Iterator[None]:
        """Raises :class:`BudgetSpent` inside the block when the budget runs out while it runs (POSIX
        main thread: ``SIGALRM``; elsewhere only checked on entry)."""
        left = self.remaining()
        if left <= 0:
            raise BudgetSpent
        usable = (
            math.isfinite(left)
            and hasattr(signal, "setitimer")
            and threading.current_thread() is threading.main_thread()
        )
        if not usable:
            yield
            return

        def fire(signum, frame):
            if not budget_spent_in(sys.exc_info()[1]):  # not again while one unwinds (its handlers run)
                raise BudgetSpent

        previous = signal.signal(signal.SIGALRM, fire)
        # then every second: Python prints and drops an exception raised in a __del__ or a weakref callback
        # ("Exception ignored in"), where a compile spends much of its time, and the block ran on past the
        # budget to the caller's kill (gpu_check's compile sub-step)
        signal.setitimer(signal.ITIMER_REAL, left, 1.0)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


class ProviderFailed(Exception):
    """A provider's call raised in the warm-up or the timed rounds: its ``name``, the ``phase`` and the
    ``error`` (the row's other providers are not to blame)."""

    def __init__(self, name: str, phase: str, error: BaseException):
        super().__init__(f"{name} in the {phase}: {type(error).__name__}: {error}")
        self.name, self.phase, self.error = name, phase, error


def _blame(name: str, phase: str, fn: Callable[[], object]) -> object:
    """``fn()``; an error it raises names its provider (:class:`ProviderFailed`), unless the budget's signal
    is in its chain (then :class:`BudgetSpent`)."""
    try:
        return fn()
    except Exception as e:
        if budget_spent_in(e):  # a library's error raised from the budget's signal (a recompile under Dynamo)
            raise BudgetSpent from e
        raise ProviderFailed(name, phase, e) from e


def synchronize(device: str) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def timed_call(fn: Callable[[], object], device: str) -> tuple[object, float]:
    """One call of ``fn``: its result and seconds, the device synchronised before and after."""
    synchronize(device)
    t0 = time.perf_counter()
    out = fn()
    synchronize(device)
    return out, time.perf_counter() - t0


@dataclass
class Interleaved:
    """Timed rounds of a row: ``times[name]`` in ms, one entry per completed round."""

    times: dict[str, list[float]]
    order: list[list[str]] = field(default_factory=list)  # the call order of each round
    cut: bool = False  # the budget ended the row before its planned rounds

    @property
    def rounds(self) -> int:
        return len(self.order)

    def median_ms(self, name: str) -> float | None:
        t = self.times.get(name)
        return statistics.median(t) if t else None

    def ratios(self, name: str, baseline: str) -> list[float]:
        """Per-round speed-ups ``baseline_time / provider_time``."""
        a, b = self.times.get(baseline) or [], self.times.get(name) or []
        return [x / y for x, y in zip(a, b) if y > 0]

    def ratio(self, name: str, baseline: str) -> tuple[float | None, float | None, float | None]:
        """(median, first quartile, third quartile) of the per-round speed-ups over ``baseline``."""
        return median_iqr(self.ratios(name, baseline))


def median_iqr(values: list[float]) -> tuple[float | None, float | None, float | None]:
    """(median, first quartile, third quartile) of ``values`` (inclusive quartiles; None when empty)."""
    if not values:
        return None, None, None
    if len(values) == 1:
        return values[0], values[0], values[0]
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return statistics.median(values), q1, q3


def interleave(
    calls: dict[str, Callable[[int], object]],
    device: str,
    *,
    rounds: int,
    min_rounds: int = 3,
    target_s: float | None = None,
    budget: Budget | None = None,
    seed: int = 0,
    before_call: Callable[[], None] | None = None,
) -> Interleaved:
    """Times ``calls`` in rounds (each once per round, a fresh random order each round); each call gets
    the round's index (a provider may encode another slice of a corpus each round).

    Runs ``rounds`` rounds, or fewer when ``target_s`` (seconds of timed calls aimed for) is reached after
    ``min_rounds``. A round that would not end within ``budget`` is not started (the result is ``cut``);
    a round the budget interrupts is dropped. ``before_call`` runs untimed before every call (an L2
    flush). ``calls`` are warmed up by the caller. A call that raises ends the rounds with
    :class:`ProviderFailed`, which names it.
    """
    rng = random.Random(seed)
    names = list(calls)
    result = Interleaved({n: [] for n in names})
    spent = 0.0
    for i in range(rounds):
        if target_s is not None and i >= min_rounds and spent >= target_s:
            break
        estimate = spent / i if i else 0.0
        if budget is not None and not budget.fits(estimate):
            result.cut = True
            break
        order = names[:]
        rng.shuffle(order)
        this: dict[str, float] = {}
        t_round = time.perf_counter()
        try:
            with budget.alarm() if budget is not None else contextlib.nullcontext():
                for name in order:
                    if before_call is not None:
                        before_call()
                    call = lambda fn=calls[name], i=i: fn(i)  # noqa: E731
                    _, seconds = _blame(name, "timed rounds", lambda call=call: timed_call(call, device))
                    this[name] = seconds * 1e3
        except BudgetSpent:
            result.cut = True
            break
        spent += time.perf_counter() - t_round
        for name in names:
            result.times[name].append(this[name])
        result.order.append(order)
    return result


def warm_up(calls: dict[str, Callable[[], object]], device: str, rounds: int, budget: Budget | None) -> None:
    """``rounds`` untimed rounds of every call (interleaved like the timed ones); a call that raises:
    :class:`ProviderFailed`, which names it."""
    for _ in range(rounds):
        with budget.alarm() if budget is not None else contextlib.nullcontext():
            for name, fn in calls.items():
                _blame(name, "warm-up", fn)
            _blame(", ".join(calls), "warm-up", lambda: synchronize(device))


def plan_rounds(per_round_s: float, target_s: float, min_rounds: int, max_rounds: int) -> int:
    """Rounds that fill ``target_s`` seconds, within ``[min_rounds, max_rounds]``."""
    if per_round_s <= 0:
        return max_rounds
    return int(min(max_rounds, max(min_rounds, math.ceil(target_s / per_round_s))))
