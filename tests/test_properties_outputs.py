"""Property tests: what an analysis run leaves behind and odrun reads back (outputs checked by
``expect``, histograms, odrun.lock), settings from the environment, mirror documents.

An analysis fetched from a record is untrusted: its outputs and its odrun.lock may hold
anything. ``evaluate`` gives one Check per expectation, never an exception;
``read_histogram`` a Histogram or a HistogramError; ``lock.check`` None or a LockError;
``Settings.load`` Settings or a ConfigError.
"""

from __future__ import annotations

import contextlib
import json
import math
import tempfile
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from odrun._retry import MAX_BACKOFF, backoff_delay
from odrun.errors import ConfigError, LockError, NotFoundError, TransportError, UsageError
from odrun.reana.record import Submission, _newest
from odrun.records.portal import MirrorPortal
from odrun.settings import MAX_RETRIES, MAX_SECONDS, Settings
from odrun.transfer.local import file_path
from odrun.workflow import lock
from odrun.workflow.expect import evaluate
from odrun.workflow.histograms import HistogramError, read_histogram

import fuzzing

OUTPUT = {
    "mass": 91.2,
    "width": 2.9,
    "rows": [1.0, 2.0],
    "h": {"edges": [0, 1, 2], "counts": [3, 4]},
}
KEYS = ("mass", "rows.1", "rows.²", "rows." + "9" * 5000, "h.counts.0", "h", "", "..", "0")
output_bytes = st.one_of(
    fuzzing.mutated(OUTPUT).map(fuzzing.dumps),
    st.sampled_from(
        (
            b'{"mass": ' + b"9" * 400 + b"}",  # float() of it: OverflowError
            b'{"mass": 1e999}',
            b'{"mass": NaN}',
            b"[" * 5000 + b"]" * 5000,  # RecursionError in json.loads
            b"\xff\xfe",
            b"",
        )
    ),
    st.binary(max_size=40),
)


@given(output_bytes, st.lists(st.sampled_from(KEYS), min_size=1, max_size=3))
@example(b'{"mass": ' + b"9" * 400 + b"}", ["mass"])
@example(b"[" * 5000 + b"]" * 5000, ["mass"])
@example(b'{"rows": [1, 2]}', ["rows.²"])
def test_any_output_gives_one_check_per_value(data: bytes, keys: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        workspace = Path(tmp)
        (workspace / "out.json").write_bytes(data)
        (workspace / "ref.json").write_text(json.dumps(OUTPUT))
        item = {
            "name": "fit",
            "file": "out.json",
            "values": {key: {"value": 91.2, "abs": 1.0} for key in keys},
            "histograms": {"h": {"reference": "ref.json#h", "abs": 1.0}},
        }
        checks = evaluate(workspace, [item])
    assert len(checks) >= 1
    assert all(isinstance(c.ok, bool) and isinstance(c.detail, str) for c in checks)


@given(output_bytes, st.sampled_from(("h", "rows.²", "h." + "1" * 5000, "")))
@example(b'{"h": {"edges": [0, ' + b"9" * 400 + b'], "counts": [1]}}', "h")
@example(b'[{"edges": [0, 1], "counts": [1]}]', "²")
def test_any_histogram_file_is_a_histogram_or_a_histogram_error(data: bytes, key: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "h.json"
        path.write_bytes(data)
        try:
            histogram = read_histogram(path, key)
        except HistogramError:
            return
    assert len(histogram.edges) == len(histogram.counts) + 1


@given(
    st.one_of(
        fuzzing.mutated({"version": 1, "records": {"1": {"files": {}}}, "images": {}}).map(
            fuzzing.dumps
        ),
        st.just(b"[" * 5000 + b"]" * 5000),
        st.binary(max_size=30),
    )
)
def test_any_lock_file_passes_or_is_a_lock_error(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "odrun.lock"
        path.write_bytes(data)
        with contextlib.suppress(LockError):
            lock.check(path, {"version": 1, "records": {}, "images": {}})


def test_a_deeply_nested_lock_file_is_a_lock_error(tmp_path: Path) -> None:
    """RecursionError (exit 1) before the fix."""
    path = tmp_path / "odrun.lock"
    path.write_bytes(b"[" * 5000 + b"]" * 5000)
    with pytest.raises(LockError):
        lock.check(path, {})


@given(
    st.sampled_from(("timeout", "retry_backoff", "metadata_ttl", "retries", "offline")),
    st.one_of(
        st.sampled_from(("nan", "inf", "-inf", "1e999", "1e300", "-1", "9" * 5000, "²", "10**18")),
        st.integers().map(str),
        st.floats().map(str),
        st.text(),
    ),
)
@example("retry_backoff", "1e300")  # time.sleep(1e300): OverflowError (exit 1) before the fix
@example("retries", str(10**18))  # retried (nearly) forever
def test_any_setting_value_is_a_setting_or_a_config_error(name: str, value: str) -> None:
    try:
        settings = Settings.load(environ={f"ODRUN_{name.upper()}": value.replace("\x00", "")})
    except ConfigError:
        return
    for number in (settings.timeout, settings.retry_backoff, settings.metadata_ttl):
        assert math.isfinite(number)
        assert 0 <= number <= MAX_SECONDS
    assert 0 <= settings.retries <= MAX_RETRIES
    for attempt in range(1, settings.retries + 1):
        assert 0 <= backoff_delay(attempt, settings.retry_backoff) <= MAX_BACKOFF


@given(st.integers(min_value=1, max_value=10_000), st.floats(min_value=0, allow_infinity=True))
def test_a_backoff_delay_is_a_number_sleep_takes(attempt: int, base: float) -> None:
    """base * 2**(attempt-1) overflowed float (OverflowError) for late attempts."""
    assert 0 <= backoff_delay(attempt, base) <= MAX_BACKOFF


def test_a_config_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    """UnicodeDecodeError (exit 1) before the fix."""
    config = tmp_path / "odrun.toml"
    config.write_bytes(b"timeout = \xff\n")
    with pytest.raises(ConfigError):
        Settings.load(environ={"ODRUN_CONFIG": str(config)})


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 5000 + b"]" * 5000,
        b'{"metadata": []}',
        b'{"metadata": {"experiment": 5}}',
        b'{"metadata": {"experiment": [null, "CMS"]}}',
    ],
)
def test_a_hostile_mirror_document_is_found_or_not(body: bytes, tmp_path: Path) -> None:
    """cms-5500 read as 5500.json checks the document's experiment: RecursionError,
    AttributeError or TypeError (exit 1) before the fix."""
    (tmp_path / "5500.json").write_bytes(body)
    with contextlib.suppress(NotFoundError):
        MirrorPortal(tmp_path).get_record("cms-5500")


def test_a_file_uri_urllib_refuses_is_a_transport_error() -> None:
    with pytest.raises(TransportError):
        file_path("file://[::1/x")


@pytest.mark.parametrize("run", ["²", "٣", "9" * 5000])
def test_a_workflow_run_number_int_refuses_sorts_as_zero(run: str, tmp_path: Path) -> None:
    """REANA names runs <name>.<n>; int('²') raised although '²'.isdigit() (exit 1)."""
    subs = [
        Submission("s", "id", f"w.{name}", "a", "p", tmp_path, submitted="t") for name in (run, "2")
    ]
    assert _newest(subs).workflow_name == "w.2"


def test_a_deeply_nested_submission_record_is_a_usage_error(tmp_path: Path) -> None:
    """RecursionError (exit 1) before the fix: `odrun status FOLDER` on a hostile folder."""
    path = tmp_path / "submission.json"
    path.write_bytes(b"[" * 5000 + b"]" * 5000)
    with pytest.raises(UsageError):
        Submission.load(path)


@pytest.mark.parametrize(
    "jobs", ["²", "0", "-1", "9" * 5000, ""], ids=["sup2", "0", "-1", "5000", "empty"]
)
def test_a_jobs_option_int_refuses_is_a_usage_error(jobs: str) -> None:
    """--executor-option jobs=² passed isdigit() and failed in int() (exit 1)."""
    pytest.importorskip("snakemake_executor_plugin_slurm")
    from odrun.workflow.snakemake import executor_args

    with pytest.raises(UsageError):
        executor_args("slurm", {"jobs": jobs})


@pytest.mark.parametrize(
    "run_json",
    [b"[]", b"[" * 5000 + b"]" * 5000, b"\xff", b'{"analysis_path": []}', b"5"],
    ids=["list", "deep", "not-utf8", "path-list", "number"],
)
@pytest.mark.parametrize("command", ["rerun", "verify"])
def test_a_hostile_run_json_is_a_typed_error(command: str, run_json: bytes, tmp_path: Path) -> None:
    """run.json a list or deeply nested: TypeError / RecursionError (exit 1) before the fix."""
    from test_properties_cli import run_cli

    run_dir = tmp_path / "run"
    (run_dir / "workspace").mkdir(parents=True)
    (run_dir / "run.json").write_bytes(run_json)
    code, err = run_cli([command, str(run_dir)])
    assert code != 1, err
    assert "Traceback" not in err
