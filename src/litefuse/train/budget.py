"""When a training run stops and saves: time budgets, stop signals and checkpoint timing.

``max_minutes`` bounds a whole invocation: data decoding, any pre-pass (the teacher / positive
sample cache of :mod:`.teachers`, which checks the :class:`Deadline` between pairs) and the step
loop. What a pre-pass computed is cached on disk, so the next run continues it. A run that ends
before its first optimisation step has only its random start to show: it writes no weights and
raises :class:`NoProgressError` (:class:`TimeBudgetError` when the budget ran out) instead.

:class:`CheckpointSchedule` says when the loop saves ``last.pt``: every ``checkpoint_every``
steps and, whatever the step rate, after ``checkpoint_minutes`` of wall time since the last
save, so a killed run always has a recent checkpoint to ``--resume`` from.

:func:`stop_on_signal` turns SIGINT/SIGTERM into a request the loop honours at the next step
boundary, so an interrupted run still saves a checkpoint and its weights.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator

from ..errors import LitefuseError

__all__ = ["CheckpointSchedule", "Deadline", "NoProgressError", "TimeBudgetError", "require_progress", "stop_on_signal"]


class NoProgressError(LitefuseError):
    """A run ended before its first optimisation step; it wrote no weights."""


class TimeBudgetError(NoProgressError):
    """The time budget ran out before the first optimisation step."""


@dataclass
class Deadline:
    """The wall-clock budget of one invocation: ``minutes`` from ``start`` (``None`` = unbounded).

    ``label`` names the run (its folder) in :meth:`exhausted`'s message.
    """

    minutes: float | None
    start: float = field(default_factory=time.monotonic)
    label: str = "run"

    def remaining_s(self) -> float:
        """Seconds left (``inf`` without a budget; negative once it is spent)."""
        if self.minutes is None:
            return math.inf
        return 60.0 * self.minutes - (time.monotonic() - self.start)

    def expired(self) -> bool:
        return self.remaining_s() <= 0

    def exhausted(self, detail: str = "") -> TimeBudgetError:
        """The error of a run whose budget ran out before its first step; ``detail`` says how far it got."""
        detail = f" ({detail})" if detail else ""
        return TimeBudgetError(
            f"{self.label}: time budget ran out before the first optimisation step{detail}; "
            "run again or with a larger --max-minutes to continue"
        )


def require_progress(steps: int, stop_reason: str, deadline: Deadline) -> None:
    """Raise unless the run took an optimisation step (else its weights would be the random start)."""
    if steps > 0:
        return
    if stop_reason == "time budget":
        raise deadline.exhausted()
    raise NoProgressError(f"{deadline.label}: {stop_reason} before the first optimisation step; no weights written")


class CheckpointSchedule:
    """When to checkpoint: every ``every_steps`` steps and ``minutes`` after the last save (0 = off).

    Wall-clock state only, deliberately not checkpointed: a resumed invocation starts its own timer.
    """

    def __init__(self, every_steps: int, minutes: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.every_steps, self.minutes, self._clock = every_steps, minutes, clock
        self._last = clock()

    def due(self, step: int) -> bool:
        """Whether to save after ``step``; a True answer restarts the timer (the caller saves)."""
        now = self._clock()
        by_steps = bool(self.every_steps) and step % self.every_steps == 0
        by_time = self.minutes > 0 and now - self._last >= 60.0 * self.minutes
        if by_steps or by_time:
            self._last = now
        return by_steps or by_time


@contextmanager
def stop_on_signal(flag: threading.Event, received: list[int] | None = None) -> Iterator[None]:
    """SIGINT/SIGTERM set ``flag`` (the loop stops at the next step boundary and saves) and are
    appended to ``received`` when given; a second SIGINT interrupts at once. No-op outside the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):  # noqa: ARG001
        if flag.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        if received is not None:
            received.append(signum)
        flag.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
