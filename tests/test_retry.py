"""odrun._retry: the one retry policy (attempts, backoff, jitter, cap, cancellation, settled
probe) and a guard that no other module grows its own backoff loop."""

from __future__ import annotations

import ast
import re
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from odrun._retry import JITTER, MAX_BACKOFF, RetryPolicy, backoff_delay
from odrun.errors import CancelledError, NotFoundError, TransientError, TransportError
from odrun.records.model import RecordFile
from odrun.settings import Settings
from odrun.transfer.engine import Engine
from odrun.transfer.store import FileStore, cache_key

PACKAGE = Path(__file__).resolve().parents[1] / "odrun"


class Flaky:
    """Fails with the given errors in turn, then returns ``value``."""

    def __init__(self, *errors: BaseException, value: str = "ok") -> None:
        self.errors = list(errors)
        self.calls = 0
        self.value = value

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.value


def policy(retries: int = 3, **kw: object) -> tuple[RetryPolicy, list[float]]:
    waits: list[float] = []
    return RetryPolicy(retries=retries, backoff=1.0, sleep=waits.append, **kw), waits  # type: ignore[arg-type]


def test_succeeds_after_transient_failures_with_one_wait_per_retry() -> None:
    p, waits = policy(3)
    call = Flaky(TransientError("a"), TransientError("b"))
    assert p.run(call) == "ok"
    assert call.calls == 3
    assert len(waits) == 2


def test_attempts_are_retries_plus_one_and_the_last_error_is_raised() -> None:
    p, waits = policy(2)
    call = Flaky(*(TransientError(f"e{i}") for i in range(5)))
    with pytest.raises(TransientError, match="e2"):
        p.run(call)
    assert call.calls == p.attempts == 3
    assert len(waits) == 2


def test_zero_retries_is_one_attempt_and_no_wait() -> None:
    p, waits = policy(0)
    call = Flaky(TransientError("down"))
    with pytest.raises(TransientError):
        p.run(call)
    assert call.calls == 1
    assert waits == []


@pytest.mark.parametrize("error", [NotFoundError("gone"), TransportError("403"), ValueError("x")])
def test_errors_not_in_retry_on_are_raised_at_once(error: Exception) -> None:
    p, waits = policy(5)
    call = Flaky(error)
    with pytest.raises(type(error)):
        p.run(call)
    assert call.calls == 1
    assert waits == []


def test_retry_on_chooses_the_retried_errors() -> None:
    waits: list[float] = []
    p = RetryPolicy(retries=2, backoff=0.0, sleep=waits.append, retry_on=(KeyError,))
    assert p.run(Flaky(KeyError("k"), value="v")) == "v"
    with pytest.raises(TransientError):
        p.run(Flaky(TransientError("not retried here")))


def test_backoff_doubles_and_stays_in_the_jitter_band() -> None:
    for attempt in range(1, 10):
        nominal = 0.5 * 2 ** (attempt - 1)
        for _ in range(50):
            delay = backoff_delay(attempt, 0.5)
            assert nominal * (1 - JITTER) <= delay <= nominal * (1 + JITTER)


def test_jitter_spans_its_range_and_is_not_constant() -> None:
    low = backoff_delay(3, 1.0, uniform=lambda a, b: a)
    high = backoff_delay(3, 1.0, uniform=lambda a, b: b)
    assert low == pytest.approx(4.0 * (1 - JITTER))
    assert high == pytest.approx(4.0 * (1 + JITTER))
    assert len({backoff_delay(3, 1.0) for _ in range(20)}) > 1
    assert backoff_delay(3, 1.0, jitter=0.0) == 4.0


@pytest.mark.parametrize("attempt", [0, 1, 60, 64, 10_000, sys.maxsize])
@pytest.mark.parametrize("base", [0.0, 1e-9, 0.5, 1e300, -1.0])
def test_backoff_is_a_number_sleep_takes_and_never_above_the_cap(attempt: int, base: float) -> None:
    delay = backoff_delay(attempt, base)
    assert 0.0 <= delay <= MAX_BACKOFF
    assert backoff_delay(attempt, base, cap=7.0) <= 7.0


def test_the_policy_waits_the_backoff_it_reports_to_on_retry() -> None:
    p, waits = policy(3)
    told: list[tuple[int, str, float]] = []
    p.run(
        Flaky(TransientError("a"), TransientError("b")),
        on_retry=lambda n, e, s: told.append((n, str(e), s)),
    )
    assert [n for n, _, _ in told] == [1, 2]
    assert [s for _, _, s in told] == waits
    assert 0.75 <= waits[0] <= 1.25
    assert 1.5 <= waits[1] <= 2.5


def test_say_gets_one_line_per_retry() -> None:
    said: list[str] = []
    p = RetryPolicy(retries=2, backoff=1.0, sleep=lambda _: None, say=said.append)
    with pytest.raises(TransientError):
        p.run(Flaky(TransientError("reset"), TransientError("reset"), TransientError("last")))
    assert len(said) == 2
    assert all("\n" not in line and "reset" in line for line in said)
    assert "attempt 2 of 3" in said[0]
    assert "attempt 3 of 3" in said[1]


def test_from_settings_reads_retries_and_backoff() -> None:
    p = RetryPolicy.from_settings(Settings(retries=5, retry_backoff=0.25))
    assert p.attempts == 6
    assert p.backoff == 0.25
    assert p.retry_on == (TransientError,)


def test_settled_probe_answer_is_the_result_and_no_retry_is_made() -> None:
    p, waits = policy(3)
    call = Flaky(TransientError("lost answer"), value="second")
    probes: list[int] = []

    def settled() -> str | None:
        probes.append(call.calls)
        return "took effect"

    assert p.run(call, settled=settled) == "took effect"
    assert call.calls == 1  # never called twice
    assert probes == [1]  # asked after the failure, not before the first attempt
    assert len(waits) == 1  # after the wait, as the REANA client had it


def test_settled_probe_none_means_retry() -> None:
    p, _ = policy(3)
    call = Flaky(TransientError("x"), TransientError("y"))
    asked = []
    assert p.run(call, settled=lambda: asked.append(1)) == "ok"
    assert len(asked) == 2
    assert call.calls == 3


def test_a_set_event_ends_the_wait_and_stops_retrying() -> None:
    cancelled = threading.Event()
    p = RetryPolicy(retries=5, backoff=MAX_BACKOFF, cancelled=cancelled)
    call = Flaky(*(TransientError("down") for _ in range(5)))
    timer = threading.Timer(0.05, cancelled.set)
    timer.start()
    try:
        with pytest.raises(CancelledError):
            p.run(call)  # a one-hour backoff: only the event can end it
    finally:
        timer.cancel()
    assert call.calls == 1


def test_a_cancelled_policy_makes_no_attempt_and_wait_says_so() -> None:
    cancelled = threading.Event()
    cancelled.set()
    p = RetryPolicy(retries=3, cancelled=cancelled)
    call = Flaky()
    with pytest.raises(CancelledError):
        p.run(call)
    assert call.calls == 0
    assert p.wait(1) is True


def test_wait_with_an_injected_sleep_and_an_event_uses_the_sleep() -> None:
    waits: list[float] = []
    p = RetryPolicy(retries=1, backoff=2.0, sleep=waits.append, cancelled=threading.Event())
    assert p.wait(1) is False
    assert len(waits) == 1
    assert 1.5 <= waits[0] <= 2.5


def test_retry_module_imports_only_errors_and_the_standard_library() -> None:
    tree = ast.parse((PACKAGE / "_retry.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            assert node.module == "errors", node.module
        elif isinstance(node, ast.ImportFrom):
            assert node.module is not None
            assert node.module.split(".")[0] in sys.stdlib_module_names, node.module
        elif isinstance(node, ast.Import):
            for alias in node.names:
                assert alias.name.split(".")[0] in sys.stdlib_module_names, alias.name


#: a backoff computed or a sleep taken outside odrun/_retry.py: a second retry loop
OWN_BACKOFF = re.compile(
    r"backoff_delay\(|time\.sleep\(|\bsleep\(\s*[\w.]*backoff|random\.uniform\(|\*\*\s*attempt"
    r"|\.wait\(\s*[\w.]*backoff|range\([^)]*\bretries\b|from time import[^#]*\bsleep\b"
)


@pytest.mark.parametrize(
    "line",
    [
        "time.sleep(1)",
        "sleep(backoff_delay(n, base))",
        "self.cancelled.wait(self.settings.retry_backoff * 2)",
        "for attempt in range(settings.retries + 1):",
        "delay = base * 2 ** attempt",
        "from time import monotonic, sleep",
        "x = random.uniform(0.75, 1.25)",
    ],
)
def test_the_guard_sees_a_backoff_loop(line: str) -> None:
    assert OWN_BACKOFF.search(line)


def test_no_module_but_retry_defines_its_own_backoff_loop() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "_retry.py" and path.parent == PACKAGE:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if OWN_BACKOFF.search(line):
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{number}: {line.strip()}")
    assert not offenders, "use odrun._retry.RetryPolicy instead:\n" + "\n".join(offenders)


# -- the download loop takes its budget and its wait from the policy ----------------------------


class _DownTransport:
    """Every stream fails transiently; the first failure can set an event."""

    name = "fake"
    schemes = frozenset({"fake"})

    def __init__(self, on_fail: threading.Event | None = None) -> None:
        self.calls = 0
        self.on_fail = on_fail

    def available(self) -> bool:
        return True

    def stream(self, uri: str, offset: int = 0, size: int | None = None) -> Iterator[bytes]:
        self.calls += 1
        if self.on_fail is not None:
            self.on_fail.set()
        raise TransientError(f"{uri}: connection reset")
        yield b""  # pragma: no cover - a generator


def _download(tmp_path: Path, settings: Settings, transport: _DownTransport) -> Engine:
    f = RecordFile("fake://h/f.root", 10, None, "f.root", "f.root")
    store = FileStore(tmp_path / "cache")
    key = cache_key(f)
    engine = Engine(settings, store, [transport])
    with store.lock(key):
        engine.download(f, key, [f.uri], {}, lambda _: None)
    return engine  # pragma: no cover - download raises in these tests


@pytest.mark.parametrize("retries", [0, 1, 4])
def test_the_download_loop_makes_retries_plus_one_attempts(tmp_path: Path, retries: int) -> None:
    transport = _DownTransport()
    settings = Settings.load({"retries": retries, "retry_backoff": 0.0})
    with pytest.raises(TransientError, match=f"gave up after {retries + 1} attempts"):
        _download(tmp_path, settings, transport)
    assert transport.calls == retries + 1


def test_cancelling_a_download_ends_its_backoff_wait(tmp_path: Path) -> None:
    failed = threading.Event()
    transport = _DownTransport(on_fail=failed)
    settings = Settings.load({"retries": 3, "retry_backoff": 3000.0})
    f = RecordFile("fake://h/f.root", 10, None, "f.root", "f.root")
    store = FileStore(tmp_path / "cache")
    key = cache_key(f)
    engine = Engine(settings, store, [transport])
    errors: list[BaseException] = []

    def fetch() -> None:
        try:
            with store.lock(key):
                engine.download(f, key, [f.uri], {}, lambda _: None)
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=fetch, daemon=True)
    worker.start()
    assert failed.wait(30)  # the first attempt failed: the loop now waits ~50 minutes
    engine.cancelled.set()
    worker.join(30)
    assert not worker.is_alive(), "the backoff wait ignored the cancellation"
    assert len(errors) == 1
    assert isinstance(errors[0], CancelledError)
    assert transport.calls == 1
