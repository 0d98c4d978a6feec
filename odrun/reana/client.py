"""Typed HTTP client of the REANA 0.9 REST API: retries, error mapping, the token never shown.

The token travels in the query string (``?access_token=``), as REANA 0.9 wants;
every message this module builds names the server and the path only, and
:func:`odrun.redact.redact` scrubs the token (whole, URL-encoded, or a piece of it)
from anything else (server error bodies, redacted *before* they are cut, httpx
errors, httpx's own log records). The token goes only to the server's own origin:
plain ``http://`` is refused unless the host is loopback or ``insecure_http`` is
set, and redirects are followed by hand, only to the same scheme, host and port
(the token re-added); any other redirect is refused with a TransportError.

Idempotent calls (GET, uploads, stop) are retried on resets, timeouts
and 5xx with exponential backoff; ``create`` is never blindly retried: after an
ambiguous failure it looks the workflow up by name first, so a flaky server never
gets two workflows.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from odrun import untrusted
from odrun._retry import RetryPolicy
from odrun.errors import (
    AuthError,
    ConflictError,
    NotFoundError,
    OdrunError,
    TransientError,
    TransportError,
    UsageError,
)
from odrun.http import RETRY_STATUS, make_client
from odrun.redact import cut, filter_http_logs, redact, register_secret
from odrun.settings import Settings
from odrun.urls import is_loopback

from .models import (
    Created,
    ServerInfo,
    WorkflowLogs,
    WorkflowStatus,
    WorkspaceFile,
    none_if_empty,
    parse_logs,
    status_of,
)

if TYPE_CHECKING:
    import httpx

CHUNK = 1 << 20
T = TypeVar("T")
RETRY_HINT = "check the server (REANA_SERVER_URL) and the network; try again later"
#: redirects followed (same origin only) before giving up
MAX_REDIRECTS = 5
#: how much of a server's error body a message shows (after redaction)
MESSAGE_CHARS, TEXT_CHARS = 500, 200

__all__ = ["ReanaClient", "is_loopback", "redact"]


filter_http_logs()


class ReanaClient:
    """One REANA server, one token, one HTTP connection pool."""

    def __init__(
        self,
        server: str,
        token: str | None,
        settings: Settings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        insecure_http: bool = False,
    ) -> None:
        register_secret(token)
        filter_http_logs()
        if not server.startswith(("https://", "http://")) or not _has_host(server):
            raise UsageError(
                f"REANA server {redact(server)!r} is not an http(s) URL",
                hint="give --server https://reana.cern.ch or set REANA_SERVER_URL",
            )
        #: plain http to another machine, allowed by insecure_http: the CLI warns
        self.unencrypted = server.startswith("http://") and not is_loopback(server)
        if self.unencrypted and not insecure_http:
            raise UsageError(
                f"REANA server {redact(server)} is plain http: the access token would travel "
                "unencrypted",
                hint="use its https:// URL; --insecure-http allows it anyway "
                "(loopback addresses are always allowed)",
            )
        self.server = server.rstrip("/")
        self.token = token or None
        self.settings = settings
        self.sleep = sleep
        self._http: httpx.Client | None = None

    def close(self) -> None:
        if self._http is not None:
            self._http.close()

    def __enter__(self) -> ReanaClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def http(self) -> httpx.Client:
        if self._http is None:
            # TLS verification stays on; redirects are followed by hand (_redirected)
            self._http = make_client(self.settings, follow_redirects=False)
        return self._http

    # -- the one place requests are sent ------------------------------------------

    def _params(self, params: Mapping[str, Any] | None, auth: bool) -> dict[str, Any]:
        out = {k: v for k, v in (params or {}).items() if v is not None}
        if auth:
            if not self.token:
                raise AuthError(
                    f"no access token for REANA server {self.server}",
                    hint="set REANA_ACCESS_TOKEN (your token from the REANA web UI)",
                )
            out["access_token"] = self.token
        return out

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        upload: Path | None = None,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
        auth: bool = True,
        what: str,
    ) -> httpx.Response:
        """One attempt; transient failures raise TransientError, others their typed error."""
        import httpx  # noqa: PLC0415 - lazy

        def request(query: Mapping[str, Any] | None, with_body: bool) -> dict[str, Any]:
            kwargs: dict[str, Any] = {"params": self._params(query, auth)}
            if with_body and body is not None:
                kwargs["json"] = body
            if with_body and files is not None:
                kwargs["files"] = dict(files)
            if with_body and upload is not None:
                kwargs["content"] = _chunks(upload)
                kwargs["headers"] = {
                    "Content-Type": "application/octet-stream",
                    "Content-Length": str(upload.stat().st_size),
                }
            return kwargs

        where = url = f"{self.server}{path}"
        with_body, query = True, params
        try:
            for _ in range(MAX_REDIRECTS + 1):
                response = self.http.request(method, url, **request(query, with_body))
                if not response.is_redirect:
                    break
                url, query = self._redirected(response, what, where)
                if response.status_code == 303 or (
                    response.status_code in (301, 302) and method not in ("GET", "HEAD")
                ):
                    method, with_body = "GET", False  # as browsers and httpx do
            else:
                raise TransportError(f"REANA {what}: more than {MAX_REDIRECTS} redirects ({where})")
        except httpx.TimeoutException:
            raise TransientError(
                f"REANA {what}: timed out after {self.settings.timeout:g} s ({where})"
            ) from None
        except httpx.TransportError as exc:
            raise self._transport_error(exc, what, where) from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:  # a body that does not decode, ...
            raise self._unreadable(exc, what, where) from None
        self._check(response, what, where)
        return response

    def _redirected(
        self, response: httpx.Response, what: str, where: str
    ) -> tuple[str, dict[str, str]]:
        """Where a redirect points (URL, query) if it is this server's origin; else a
        TransportError. The token is taken out of the query: the next request adds it."""
        target = response.url.join(response.headers["Location"])
        base = type(target)(self.server)
        if (target.scheme, target.host, target.port) != (base.scheme, base.host, base.port):
            shown = redact(str(target.copy_with(query=None)))
            raise TransportError(
                f"REANA {what}: the server redirected to {shown} (another scheme, host or port): "
                f"not followed, the access token is only sent to {self.server} ({where})",
                hint="if that is the REANA server's real address, give it as --server "
                "or REANA_SERVER_URL",
            )
        query = {k: v for k, v in target.params.items() if k != "access_token"}
        return str(target.copy_with(query=None)), query

    def _transport_error(self, exc: Exception, what: str, where: str) -> OdrunError:
        """A connection failure: worth retrying, unless the TLS certificate is not trusted."""
        detail = redact(f"{type(exc).__name__}: {exc}", self.token)
        if "CERTIFICATE_VERIFY_FAILED" in detail or "certificate verify failed" in detail:
            return TransportError(
                f"REANA {what}: the server's TLS certificate is not trusted ({where})",
                hint="if your site signs with its own CA, set SSL_CERT_FILE to its bundle",
            )
        return TransientError(f"REANA {what}: {detail} ({where})")

    def _unreadable(self, exc: Exception, what: str, where: str) -> OdrunError:
        """An answer odrun cannot read (bad Content-Encoding, a redirect loop): not retried."""
        detail = redact(f"{type(exc).__name__}: {exc}", self.token)
        return TransportError(f"REANA {what}: unreadable answer: {detail} ({where})")

    def _check(self, response: httpx.Response, what: str, where: str) -> None:
        code = response.status_code
        if code < 400:
            return
        message = _message(response, self.token)
        text = f"REANA {what}: HTTP {code} from {where}" + (f": {message}" if message else "")
        if code in RETRY_STATUS:
            raise TransientError(text)
        if code in (401, 403):
            raise AuthError(
                text,
                hint="check REANA_ACCESS_TOKEN (and that it is for this server, REANA_SERVER_URL)",
            )
        if code == 404:
            raise NotFoundError(text)
        if code == 409:
            raise ConflictError(text)
        if code == 400:
            raise UsageError(text)
        raise TransportError(text)

    def _retrying(
        self,
        call: Callable[[], T],
        *,
        settled: Callable[[], T | None] | None = None,
        note: str = "",
        hint: str | None = RETRY_HINT,
    ) -> T:
        """``call`` again after transient failures, with backoff; the last error if all fail.

        Before each retry ``settled`` (for calls that are not idempotent) asks the server
        whether the failed attempt took effect after all; its answer, if any, is the result.
        """
        policy = RetryPolicy.from_settings(self.settings, sleep=self.sleep)
        try:
            return policy.run(call, settled=settled)
        except TransientError as exc:
            raise TransportError(
                f"{exc.message} (after {policy.attempts} attempts{note})", hint=hint
            ) from None

    def _get_json(
        self, path: str, what: str, params: Mapping[str, Any] | None = None, auth: bool = True
    ) -> Any:
        response = self._retrying(
            lambda: self._send("GET", path, params=params, auth=auth, what=what)
        )
        return _json(response, what)

    # -- the API ---------------------------------------------------------------------

    def ping(self) -> ServerInfo:
        data = self._get_json("/api/ping", "ping", auth=False)  # unauthenticated, as in REANA
        data = {} if not isinstance(data, dict) else data
        caps = data.get("api_capabilities")
        return ServerInfo(
            self.server,
            untrusted.text(data.get("message")) or "",
            none_if_empty(data.get("reana_server_version")),
            tuple(c for c in map(untrusted.text, caps) if c) if isinstance(caps, list) else (),
        )

    def you(self) -> str:
        """``GET /api/you`` (reana-client's ping): checks the token; returns the user's email."""
        data = self._get_json("/api/you", "check the access token")
        return (untrusted.text(data.get("email")) or "") if isinstance(data, dict) else ""

    def find(self, name: str) -> list[WorkflowStatus]:
        """Every run of workflow ``name`` (REANA numbers runs: ``name.1``, ``name.2``)."""
        data = self._get_json(
            "/api/workflows",
            f"list workflows named {name}",
            {"type": "batch", "workflow_id_or_name": name, "include_progress": "true"},
        )
        items = data.get("items") if isinstance(data, dict) else data
        items = items if isinstance(items, list) else []
        return [status_of(item) for item in items if isinstance(item, dict)]

    def create(self, name: str, spec: Mapping[str, Any], bundle: bytes | None = None) -> Created:
        """Create workflow ``name``; never creates it twice.

        ``spec`` is the expanded specification (released 0.9 protocol, JSON body);
        with ``bundle`` (servers advertising bundles-v1) the ZIP is sent instead.
        """
        before = {w.id for w in self._find_quietly(name)}

        def send() -> Created:
            response = self._send(
                "POST",
                "/api/workflows",
                params={"workflow_name": name},
                body=None if bundle is not None else dict(spec),
                files={"bundle": ("bundle.zip", bundle, "application/zip")}
                if bundle is not None
                else None,
                what=f"create workflow {name}",
            )
            data = _json(response, "create workflow")
            data = data if isinstance(data, dict) else {}
            workflow_id = untrusted.text(data.get("workflow_id"))
            if not workflow_id:
                raise TransportError(f"REANA create workflow {name}: the answer has no workflow_id")
            return Created(workflow_id, untrusted.text(data.get("workflow_name")) or name)

        def got_through() -> Created | None:  # the earlier attempt was created after all
            found = [w for w in self._find_quietly(name) if w.id not in before]
            return Created(found[0].id, found[0].name) if found else None

        return self._retrying(
            send,
            settled=got_through,
            note="; no workflow was created",
            hint="try again later",
        )

    def _find_quietly(self, name: str) -> list[WorkflowStatus]:
        try:
            return self.find(name)
        except NotFoundError:
            return []

    def upload(self, workflow: str, rel: str, path: Path) -> None:
        route = f"/api/workflows/{quote(workflow, safe='')}/workspace"
        self._retrying(
            lambda: self._send(
                "POST", route, params={"file_name": rel}, upload=path, what=f"upload {rel}"
            )
        )

    def start(self, workflow: str) -> None:
        """Start; after an ambiguous failure the status says whether it started."""
        route = f"/api/workflows/{quote(workflow, safe='')}/start"

        def send() -> bool:
            self._send("POST", route, body={}, what=f"start {workflow}")
            return True

        def started() -> bool | None:
            return True if self.status(workflow).status != "created" else None

        self._retrying(send, settled=started, hint=None)

    def status(self, workflow: str) -> WorkflowStatus:
        route = f"/api/workflows/{quote(workflow, safe='')}/status"
        data = self._get_json(route, f"status of {workflow}")
        return status_of(data if isinstance(data, dict) else {})

    def stop(self, workflow: str) -> None:
        route = f"/api/workflows/{quote(workflow, safe='')}/status"
        self._retrying(
            lambda: self._send(
                "PUT", route, params={"status": "stop"}, body={}, what=f"stop {workflow}"
            )
        )

    def logs(self, workflow: str) -> WorkflowLogs:
        route = f"/api/workflows/{quote(workflow, safe='')}/logs"
        data = self._get_json(route, f"logs of {workflow}")
        raw = data.get("logs") if isinstance(data, dict) else None
        return parse_logs(raw)

    def ls(self, workflow: str) -> list[WorkspaceFile]:
        route = f"/api/workflows/{quote(workflow, safe='')}/workspace"
        data = self._get_json(route, f"workspace of {workflow}")
        items = data.get("items") if isinstance(data, dict) else None
        out = []
        for item in items if isinstance(items, list) else []:
            name = untrusted.text(item.get("name")) if isinstance(item, dict) else None
            if not name:
                continue
            size = item.get("size")
            raw = size.get("raw") if isinstance(size, dict) else size
            out.append(
                WorkspaceFile(
                    name,
                    untrusted.count(raw) if isinstance(raw, int) else None,
                    none_if_empty(item.get("last-modified")),
                )
            )
        return out

    def download(self, workflow: str, rel: str, dest: Path) -> int:
        """``rel`` of the workspace to ``dest`` (through a temp file); returns its size."""
        route = f"/api/workflows/{quote(workflow, safe='')}/workspace/{quote(rel)}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_name(f".{dest.name}.{os.getpid()}.part")

        def once() -> httpx.Response:
            import httpx  # noqa: PLC0415 - lazy

            where = url = f"{self.server}{route}"
            query: dict[str, str] | None = None
            try:
                for _ in range(MAX_REDIRECTS + 1):
                    with self.http.stream("GET", url, params=self._params(query, True)) as response:
                        if response.is_redirect:
                            url, query = self._redirected(response, f"download {rel}", where)
                            continue
                        if response.status_code >= 400:
                            response.read()
                            self._check(response, f"download {rel}", where)
                        part.unlink(missing_ok=True)  # a new file: never written through
                        with part.open("xb") as out:
                            for chunk in response.iter_bytes(CHUNK):
                                out.write(chunk)
                        return response
                raise TransportError(
                    f"REANA download {rel}: more than {MAX_REDIRECTS} redirects ({where})"
                )
            except httpx.TimeoutException:
                raise TransientError(f"REANA download {rel}: timed out ({where})") from None
            except httpx.TransportError as exc:
                raise self._transport_error(exc, f"download {rel}", where) from None
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                raise self._unreadable(exc, f"download {rel}", where) from None

        try:
            self._retrying(once)
            part.replace(dest)
        finally:
            part.unlink(missing_ok=True)
        return dest.stat().st_size


def _has_host(url: str) -> bool:
    """Whether urllib can split ``url`` into a host and a valid port (https://[::1 cannot)."""
    split = untrusted.split_url(url)
    try:
        return split is not None and bool(split.hostname) and (split.port or 0) >= 0
    except ValueError:  # port out of range or not a number
        return False


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk


def _message(response: httpx.Response, token: str | None) -> str:
    """The server's error message: redacted first, then cut (a cut never shows a token piece)."""
    try:
        data = untrusted.load_json(response.content)
    except ValueError:
        return cut(response.text.strip(), TEXT_CHARS, token)
    if isinstance(data, dict) and data.get("message"):
        return cut(str(data["message"]), MESSAGE_CHARS, token)
    return ""


def _json(response: httpx.Response, what: str) -> Any:
    try:
        return untrusted.load_json(response.content)
    except ValueError:
        raise TransportError(f"REANA {what}: the server did not answer JSON") from None
