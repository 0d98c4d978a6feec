"""Every error odrun raises, and the exit code each one maps to.

Library code raises these; only the CLI catches them (in one place,
``odrun.cli.main``) and turns them into a one-line message and an exit code.

Hierarchy (exit code in brackets)::

    OdrunError                      [1]  root; never raised directly
    ├── UsageError                  [2]  the user's input is malformed
    │   ├── InvalidReferenceError   [2]  TARGET is not a DOI / recid / record URL
    │   ├── SpecError               [2]  the user's reana.yaml / odrun.yaml cannot run
    │   └── ConflictError           [2]  the request conflicts with the state of what it
    │                                    names (HTTP 409: stop an ended REANA workflow)
    ├── NotFoundError               [3]  no such record, DOI or file
    ├── ChecksumError               [4]  bytes did not match the declared size/checksum
    ├── TransportError              [5]  portal or storage unreachable, timeouts, 5xx
    │   ├── TransientError          [5]  worth retrying: reset, timeout, 5xx, dropped body
    │   ├── RangeUnsupportedError   [5]  a server ignored a byte-range request (one stream then)
    │   ├── TooLargeError           [5]  an answer larger than such a document can be (or
    │   │                                than the size the record declares for it)
    │   └── OfflineError            [5]  --offline and the answer is not cached
    ├── PartialError                [6]  some of many items failed, others succeeded
    ├── WorkflowError               [7]  an analysis step failed (verify: the run failed)
    ├── ConfigError                 [8]  bad setting, config file or environment variable
    ├── VerificationError          [10]  a run's outputs do not meet its expectations
    │                                    (odrun diff: two runs' outputs differ)
    │   └── HistogramError         [10]  a histogram (output or reference) missing or
    │                                    malformed; also a ValueError
    ├── LockError                  [11]  --locked and the inputs drifted from odrun.lock
    ├── AuthError                  [12]  a server rejected the access token (REANA)
    ├── DiskFullError              [13]  no space left (ENOSPC) or quota exceeded (EDQUOT)
    ├── MetadataError               [9]  record metadata is malformed or unsafe
    │   ├── UnsafeMetadataError     [9]  a path that would escape its folder (also through a
    │   │                                link), an unsafe archive member, an unpack limit
    │   └── HepdataError            [9]  a HEPData table malformed, or without the asked
    │                                    variable, bins or error source
    └── CancelledError            [130]  stopped on request (Ctrl-C); work so far is kept

130 is used for an interrupted run (Ctrl-C), 0 for success.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_INTERRUPTED = 130


class OdrunError(Exception):
    """Root of odrun's errors. ``str(err)`` is a complete one-line message."""

    exit_code = 1
    label = "error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class UsageError(OdrunError):
    exit_code = 2
    label = "usage error"


class InvalidReferenceError(UsageError):
    label = "invalid reference"


class SpecError(UsageError):
    """An analysis specification (the user's reana.yaml / odrun.yaml) that cannot run."""

    label = "invalid specification"


class ConflictError(UsageError):
    """The request conflicts with the current state of what it names (HTTP 409), e.g.
    stopping a REANA workflow that has already ended: check the state, then try again."""

    label = "conflict"


class NotFoundError(OdrunError):
    exit_code = 3
    label = "not found"


class ChecksumError(OdrunError):
    exit_code = 4
    label = "checksum mismatch"


class TransportError(OdrunError):
    exit_code = 5
    label = "transport error"


class TransientError(TransportError):
    """A failure that may go away on retry (connection reset, timeout, 5xx).

    ``resumable`` is False when the bytes received so far must not be kept for a
    resume: the response disagreed with the declared size, or could not vouch for it.
    """

    label = "transient transport error"

    def __init__(self, message: str, *, hint: str | None = None, resumable: bool = True) -> None:
        super().__init__(message, hint=hint)
        self.resumable = resumable


class RangeUnsupportedError(TransportError):
    """A server answered a byte-range request with the whole file: multi-stream is not possible.

    The multi-stream path catches it and fetches the file in one stream instead.
    """

    label = "byte ranges unsupported"


class TooLargeError(TransportError):
    """A server's answer is larger than its limit (a document's bound, or a declared size);
    raised while the body arrives, before it is held in memory."""

    label = "answer too large"


class OfflineError(TransportError):
    label = "offline"


class PartialError(OdrunError):
    exit_code = 6
    label = "partial failure"


class WorkflowError(OdrunError):
    exit_code = 7
    label = "workflow failed"


class ConfigError(OdrunError):
    exit_code = 8
    label = "configuration error"


class MetadataError(OdrunError):
    exit_code = 9
    label = "bad metadata"


class UnsafeMetadataError(MetadataError):
    label = "unsafe metadata"


class HepdataError(MetadataError):
    """A HEPData table (downloaded or a local file) that is malformed, or that lacks the
    dependent variable, bins or error source an expectation asks for."""

    label = "bad HEPData table"


class VerificationError(OdrunError):
    exit_code = 10
    label = "verification failed"


class HistogramError(VerificationError, ValueError):
    """A histogram is missing or malformed; the message names the file and key.

    Also a :class:`ValueError`, as it was before it joined the tree."""

    label = "bad histogram"


class LockError(OdrunError):
    exit_code = 11
    label = "lock drift"


class AuthError(OdrunError):
    """A server rejected the credentials (e.g. REANA_ACCESS_TOKEN); never names the token."""

    exit_code = 12
    label = "access denied"


class DiskFullError(OdrunError):
    """No space left on a filesystem (ENOSPC) or a quota exceeded (EDQUOT); names which one."""

    exit_code = 13
    label = "disk full"


class CancelledError(OdrunError):
    exit_code = EXIT_INTERRUPTED
    label = "interrupted"


#: The table shown in ``odrun --help`` and docs/exit-codes.md (a test keeps them equal).
EXIT_CODES: tuple[tuple[int, str], ...] = (
    (EXIT_OK, "success"),
    (OdrunError.exit_code, "unexpected error (a bug: please report it)"),
    (
        UsageError.exit_code,
        "usage: bad option, malformed TARGET or spec, or a state conflict (HTTP 409)",
    ),
    (NotFoundError.exit_code, "not found: no such record, DOI or file"),
    (ChecksumError.exit_code, "checksum or size mismatch"),
    (TransportError.exit_code, "transport: portal/storage unreachable, timeout, or offline"),
    (PartialError.exit_code, "partial: some items failed, the rest succeeded"),
    (WorkflowError.exit_code, "workflow step failed (verify: the run judged failed or is partial)"),
    (ConfigError.exit_code, "configuration: bad setting, config file or env variable"),
    (MetadataError.exit_code, "record metadata malformed or unsafe"),
    (
        VerificationError.exit_code,
        "verification: outputs do not meet the expectations (diff: two runs' outputs differ)",
    ),
    (LockError.exit_code, "lock drift: --locked and inputs differ from odrun.lock"),
    (AuthError.exit_code, "access denied: the server rejected the token (REANA_ACCESS_TOKEN)"),
    (DiskFullError.exit_code, "disk full: no space left or quota exceeded (cache or destination)"),
    (EXIT_INTERRUPTED, "interrupted (Ctrl-C)"),
)
