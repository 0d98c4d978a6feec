"""One retry policy: attempts, exponential backoff with jitter and a cap, an interruptible wait.

Every retry loop in odrun (portal GETs in :mod:`odrun.http`, REANA calls in
:mod:`odrun.reana.client`, downloads in :mod:`odrun.transfer.engine`) takes its delays and
waits from here; a test fails if another module computes its own backoff or sleeps.

:meth:`RetryPolicy.run` calls a function until it succeeds, retrying only the errors in
``retry_on`` (:class:`~odrun.errors.TransientError` by default). Before each retry an
optional ``settled`` probe asks whether the failed attempt took effect after all (a
``create`` whose answer was lost): its answer, if not None, is the result. When the
attempts run out the last error is raised unchanged, for the caller to word.

This module is in the bottom layer: it imports only :mod:`odrun.errors` and the standard
library (settings are read through the :class:`RetrySettings` protocol).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from .errors import CancelledError, TransientError

__all__ = [
    "JITTER",
    "MAX_BACKOFF",
    "RetryPolicy",
    "RetrySettings",
    "backoff_delay",
]

T = TypeVar("T")

#: the longest wait between two attempts, in seconds (time.sleep overflows on huge values)
MAX_BACKOFF = 3600.0
#: each delay is scaled by a factor drawn uniformly from [1 - JITTER, 1 + JITTER]
JITTER = 0.25


class RetrySettings(Protocol):
    """What the policy reads from :class:`odrun.settings.Settings`."""

    @property
    def retries(self) -> int: ...

    @property
    def retry_backoff(self) -> float: ...


def backoff_delay(
    attempt: int,
    base: float,
    *,
    cap: float = MAX_BACKOFF,
    jitter: float = JITTER,
    uniform: Callable[[float, float], float] = random.uniform,
) -> float:
    """Delay before retry ``attempt`` (1-based): ``base * 2**(attempt-1)``, scaled by a
    random factor in ``[1 - jitter, 1 + jitter]``, never below 0 nor above ``cap``."""
    delay: float = max(base, 0.0) * 2.0 ** min(max(attempt, 1) - 1, 64)
    scaled = delay * uniform(1.0 - jitter, 1.0 + jitter)
    return min(max(scaled, 0.0), cap)


@dataclass(frozen=True)
class RetryPolicy:
    """``retries`` retries after the first attempt, waiting :func:`backoff_delay` between.

    The wait is ``sleep`` when given (tests inject one), else ``cancelled.wait`` when an
    event is given (a set event ends the wait at once and stops the retries), else
    :func:`time.sleep`.
    """

    retries: int = 3
    backoff: float = 0.5
    cap: float = MAX_BACKOFF
    jitter: float = JITTER
    retry_on: tuple[type[BaseException], ...] = (TransientError,)
    sleep: Callable[[float], object] | None = None
    cancelled: threading.Event | None = None
    #: told one line before each wait (library code never prints)
    say: Callable[[str], object] | None = None
    uniform: Callable[[float, float], float] = field(default=random.uniform, repr=False)

    @classmethod
    def from_settings(
        cls,
        settings: RetrySettings,
        *,
        sleep: Callable[[float], object] | None = None,
        cancelled: threading.Event | None = None,
        retry_on: tuple[type[BaseException], ...] = (TransientError,),
        say: Callable[[str], object] | None = None,
    ) -> RetryPolicy:
        return cls(
            retries=max(settings.retries, 0),
            backoff=settings.retry_backoff,
            retry_on=retry_on,
            sleep=sleep,
            cancelled=cancelled,
            say=say,
        )

    @property
    def attempts(self) -> int:
        """How many times :meth:`run` calls at most: the first attempt and the retries."""
        return max(self.retries, 0) + 1

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry ``attempt`` (1-based)."""
        return backoff_delay(
            attempt, self.backoff, cap=self.cap, jitter=self.jitter, uniform=self.uniform
        )

    def is_cancelled(self) -> bool:
        return self.cancelled is not None and self.cancelled.is_set()

    def wait(self, attempt: int) -> bool:
        """Wait before retry ``attempt``; True if cancelled (before or during the wait)."""
        return self.pause(self.delay(attempt))

    def pause(self, seconds: float) -> bool:
        """Wait ``seconds``; True if cancelled (before or during the wait)."""
        if self.is_cancelled():
            return True
        if self.sleep is not None:
            self.sleep(seconds)
        elif self.cancelled is not None:
            self.cancelled.wait(seconds)
        else:
            time.sleep(seconds)
        return self.is_cancelled()

    def run(
        self,
        call: Callable[[], T],
        *,
        settled: Callable[[], T | None] | None = None,
        on_retry: Callable[[int, BaseException, float], object] | None = None,
    ) -> T:
        """``call()`` until it returns; retried errors are raised unchanged once the
        attempts run out, others at once. ``on_retry(attempt, error, delay)`` and ``say``
        are told before each wait; a cancellation raises :class:`~odrun.errors.CancelledError`."""
        attempt = 0
        while True:
            if attempt and settled is not None:
                done = settled()
                if done is not None:
                    return done
            if self.is_cancelled():
                raise CancelledError("interrupted while retrying")
            try:
                return call()
            except self.retry_on as exc:
                attempt += 1
                if attempt >= self.attempts:
                    raise
                seconds = self.delay(attempt)
                if on_retry is not None:
                    on_retry(attempt, exc, seconds)
                if self.say is not None:
                    self.say(
                        f"{exc}; retrying in {seconds:.1f} s "
                        f"(attempt {attempt + 1} of {self.attempts})"
                    )
                if self.pause(seconds):
                    raise CancelledError("interrupted while waiting to retry") from None
