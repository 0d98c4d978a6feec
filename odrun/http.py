"""One place for HTTP requests: timeouts, retries with backoff and jitter, error mapping.

Transient failures (connection errors, timeouts, 5xx, 429) are retried
``settings.retries`` times with exponential backoff; 404 becomes NotFoundError,
other 4xx a TransportError at once. :func:`get_bytes` reads a body up to a limit while
it arrives (an untrusted server's huge answer is refused, never held in memory), and
every client :func:`make_client` makes refuses to follow a redirect from https to anything
but https (a downgrade) or to a scheme other than http(s), before the new location is asked
(``make_client(..., no_downgrade=True)`` also refuses plain http on a host that is not
loopback for every request). A client builds its TLS context (the CA bundle: 20-150 ms) at its
first https request, not when it is made (:class:`_LazyTLS`): a process that only speaks
http:// or root:// never pays for it. Nothing here prints.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from . import untrusted
from ._retry import MAX_BACKOFF, RetryPolicy, backoff_delay
from ._version import __version__
from .errors import NotFoundError, TooLargeError, TransientError, TransportError
from .settings import Settings
from .urls import is_loopback

if TYPE_CHECKING:  # httpx costs ~0.1 s to import: only when a request is made
    import httpx

__all__ = [
    "MAX_BACKOFF",
    "RETRY_STATUS",
    "USER_AGENT",
    "backoff_delay",
    "get",
    "get_bytes",
    "make_client",
]

USER_AGENT = f"odrun/{__version__}"
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


def _refuse_downgrade(request: httpx.Request) -> None:
    """A request hook (also run for every redirect): https, or http on loopback only."""
    url = str(request.url)
    if request.url.scheme != "https" and not is_loopback(url):
        raise TransportError(
            f"refused to follow a redirect to plain http: {url[:200]} (only https, or http "
            "on a loopback address)",
            hint="the server redirected away from https; report it to its operators",
        )


#: schemes a redirect may lead to; from https, only https
_REDIRECT_SCHEMES = frozenset({"http", "https"})


def _refuse_redirect_downgrade(response: httpx.Response) -> None:
    """A response hook (run before a redirect is followed): an https request is followed
    only to https, any request only to http(s). A TransportError names both URLs."""
    if not response.has_redirect_location:
        return
    import httpx  # noqa: PLC0415 - lazy: import costs ~0.1 s

    origin = response.request.url
    location = response.headers["Location"]
    try:
        target = origin.join(location)
    except httpx.InvalidURL:
        return  # httpx refuses it itself (RemoteProtocolError: not followed)
    scheme = target.scheme.lower()
    if scheme in _REDIRECT_SCHEMES and (origin.scheme != "https" or scheme == "https"):
        return
    shown = untrusted.printable(location)[:200]
    kind = "plain http" if scheme == "http" else f"a {untrusted.printable(scheme)[:20]}: URL"
    raise TransportError(
        f"refused to follow a redirect from {str(origin)[:200]} to {kind}: {shown} "
        f"(only https{'' if origin.scheme == 'https' else ' or http'} is followed)",
        hint="the server redirected away from https; report it to its operators",
    )


@functools.cache
def _lazy_tls_class() -> Callable[..., httpx.BaseTransport]:
    """:class:`_LazyTLS`, defined when httpx is imported (lazily, as everything here)."""
    import ssl  # noqa: PLC0415

    import httpx  # noqa: PLC0415 - lazy: import costs ~0.1 s

    class _LazyTLS(httpx.BaseTransport):
        """httpx's default transport, as two pools: http:// requests go to one whose TLS
        context is bare (no CA bundle loaded; it never makes a TLS connection: were it
        asked to, it would verify against no CA and refuse), https:// requests to one
        made at the first of them with httpx's own verifying context (``verify=True``,
        ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` honoured with ``trust_env``)."""

        def __init__(self, **options: Any) -> None:
            self._options = options
            self._lock = threading.Lock()
            plain = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies, with no CA: refuses
            self._plain = httpx.HTTPTransport(verify=plain, **options)
            self._tls: httpx.HTTPTransport | None = None

        def _secure(self) -> httpx.HTTPTransport:
            with self._lock:  # the fetch threads share one client: one context, one pool
                if self._tls is None:
                    self._tls = httpx.HTTPTransport(verify=True, **self._options)
                return self._tls

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            pool = self._plain if request.url.scheme == "http" else self._secure()
            return pool.handle_request(request)

        def close(self) -> None:
            self._plain.close()
            with self._lock:
                if self._tls is not None:
                    self._tls.close()

    return _LazyTLS


def make_client(
    settings: Settings, *, follow_redirects: bool = True, no_downgrade: bool = False
) -> httpx.Client:
    """An HTTP client with odrun's timeouts; ``follow_redirects=False`` for calls that carry
    a credential (REANA): those follow redirects by hand, same origin only. Redirects it
    follows never go from https to plain http, nor to another scheme.
    ``no_downgrade``: every request, redirects included, must be https or loopback http
    (a TransportError before anything is sent otherwise)."""
    from urllib.request import getproxies  # noqa: PLC0415 - httpx imports it anyway

    import httpx  # noqa: PLC0415 - lazy: import costs ~0.1 s

    timeout = httpx.Timeout(settings.timeout, connect=min(settings.timeout, 10.0))
    # httpx mounts the environment's proxies only for its own default transport: with a
    # proxy configured, that transport (and its TLS context at once) it is
    proxied = any(scheme in ("http", "https", "all") for scheme in getproxies())
    return httpx.Client(
        transport=None if proxied else _lazy_tls_class()(trust_env=True),
        timeout=timeout,
        follow_redirects=follow_redirects,
        headers={"User-Agent": USER_AGENT},
        trust_env=True,
        event_hooks={
            "request": [_refuse_downgrade] if no_downgrade else [],
            "response": [_refuse_redirect_downgrade] if follow_redirects else [],
        },
    )


def _too_large(what: str, url: str, max_bytes: int) -> TooLargeError:
    return TooLargeError(
        f"{what}: the answer from {url} is larger than {max_bytes} bytes: refused",
        hint="the server sent far more than such a document can be",
    )


def _read_limited(response: httpx.Response, max_bytes: int, what: str, url: str) -> bytes:
    declared = response.headers.get("Content-Length", "").strip()
    if declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(what, url, max_bytes)
    chunks: list[bytes] = []
    total = 0
    for chunk in response.iter_bytes():  # decoded: a gzip bomb stops at the limit too
        total += len(chunk)
        if total > max_bytes:
            raise _too_large(what, url, max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


def get_bytes(
    client: httpx.Client,
    url: str,
    settings: Settings,
    *,
    max_bytes: int,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    what: str = "resource",
    sleep: Callable[[float], object] | None = None,
) -> bytes:
    """The body of a 2xx answer to GET ``url``, as :func:`get`, read while it arrives: a
    body larger than ``max_bytes`` (declared or sent) is a TransportError at once."""
    return _get(client, url, settings, params, headers, what, sleep, max_bytes)[1]


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
    return _get(client, url, settings, params, headers, what, sleep, None)[0]


def _get(
    client: httpx.Client,
    url: str,
    settings: Settings,
    params: Mapping[str, str] | None,
    headers: Mapping[str, str] | None,
    what: str,
    sleep: Callable[[float], object] | None,
    max_bytes: int | None,
) -> tuple[httpx.Response, bytes]:
    import httpx  # noqa: PLC0415 - lazy: import costs ~0.1 s

    def attempt() -> tuple[httpx.Response, bytes]:
        body = b""
        try:
            if max_bytes is None:
                response = client.get(url, params=params, headers=headers)
            else:
                with client.stream("GET", url, params=params, headers=headers) as response:
                    if response.is_success:
                        body = _read_limited(response, max_bytes, what, url)
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
        return response, body

    policy = RetryPolicy.from_settings(settings, sleep=sleep)
    try:
        return policy.run(attempt)
    except TransientError as exc:
        raise TransportError(
            f"cannot get {what} from {url}: {exc.message} (after {policy.attempts} attempts)",
            hint="check the network or --portal / ODRUN_PORTAL_URL; --offline uses cached data",
        ) from None
