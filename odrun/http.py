"""One place for HTTP requests: timeouts, retries with backoff and jitter, error mapping.

Transient failures (connection errors, timeouts, 5xx, 429) are retried
``settings.retries`` times with exponential backoff; 404 becomes NotFoundError,
other 4xx a TransportError at once. Nothing here prints.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from ._retry import MAX_BACKOFF, RetryPolicy, backoff_delay
from ._version import __version__
from .errors import NotFoundError, TransientError, TransportError
from .settings import Settings

if TYPE_CHECKING:  # httpx costs ~0.1 s to import: only when a request is made
    import httpx

__all__ = ["MAX_BACKOFF", "RETRY_STATUS", "USER_AGENT", "backoff_delay", "get", "make_client"]

USER_AGENT = f"odrun/{__version__}"
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


def make_client(settings: Settings, *, follow_redirects: bool = True) -> httpx.Client:
    """An HTTP client with odrun's timeouts; ``follow_redirects=False`` for calls that carry
    a credential (REANA): those follow redirects by hand, same origin only."""
    import httpx  # noqa: PLC0415 - lazy: import costs ~0.1 s

    timeout = httpx.Timeout(settings.timeout, connect=min(settings.timeout, 10.0))
    return httpx.Client(
        timeout=timeout,
        follow_redirects=follow_redirects,
        headers={"User-Agent": USER_AGENT},
        trust_env=True,
    )


def get(
    client: httpx.Client,
    url: str,
    settings: Settings,
    *,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    what: str = "resource",
    sleep: Callable[[float], object] | None = None,
) -> httpx.Response:
    """GET ``url`` with retries (:class:`~odrun._retry.RetryPolicy` from ``settings``);
    return a 2xx response or raise a typed error."""
    import httpx  # noqa: PLC0415 - lazy: import costs ~0.1 s

    def attempt() -> httpx.Response:
        try:
            response = client.get(url, params=params, headers=headers)
        except httpx.TimeoutException:
            raise TransientError(f"timed out after {settings.timeout:g} s") from None
        except httpx.TransportError as exc:
            raise TransientError(
                f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            ) from None
        except httpx.InvalidURL as exc:  # e.g. https://h:x/ from a record's index entry
            raise TransportError(f"{what}: {url} is not a valid URL: {exc}") from None
        except httpx.HTTPError as exc:
            # not worth retrying: a body that does not decode, a redirect loop
            raise TransportError(
                f"{what}: {type(exc).__name__}: {exc} ({url})",
                hint="the server answered something odrun cannot read; try again later",
            ) from None
        if response.status_code in RETRY_STATUS:
            raise TransientError(f"HTTP {response.status_code}")
        if response.status_code == 404:
            raise NotFoundError(f"{what} not found (HTTP 404 from {url})")
        if response.status_code >= 400:
            raise TransportError(
                f"{what}: HTTP {response.status_code} from {url}",
                hint="check the URL and your access rights",
            )
        return response

    policy = RetryPolicy.from_settings(settings, sleep=sleep)
    try:
        return policy.run(attempt)
    except TransientError as exc:
        raise TransportError(
            f"cannot get {what} from {url}: {exc.message} (after {policy.attempts} attempts)",
            hint="check the network or --portal / ODRUN_PORTAL_URL; --offline uses cached data",
        ) from None
