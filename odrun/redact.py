"""Secrets never shown: one function scrubs access tokens from every text odrun shows.

:func:`register_secret` is called with each token odrun holds (the REANA client does
it for REANA_ACCESS_TOKEN; the CLI forgets them when a command ends); :func:`redact`
then replaces, in any text:

- the token itself and its URL-encoded forms (percent-encoded with or without ``/``
  kept, ``+`` for spaces), compared case-insensitively (``%2f`` = ``%2F``);
- any ``access_token=...`` query value, known token or not;
- any run of at least :data:`MIN_PIECE` characters that is a piece of one of those
  forms: what survives of a token that a server echoed and something cut.

:func:`cut` shortens a text for a message *after* redacting it, and scrubs the
pieces again, so a cut never leaves a token's prefix behind. :func:`filter_http_logs`
puts a filter redacting every record on httpx's and httpcore's loggers (each one:
a logger's filters never see its children's records).
"""

from __future__ import annotations

import logging
import re
import threading
from urllib.parse import quote, quote_plus

MASK = "***"
#: the shortest piece of a token that is scrubbed (shorter ones carry little)
MIN_PIECE = 8
_QUERY_TOKEN = re.compile(r"(access_token=)[^&\s'\"]+", re.IGNORECASE)
_secrets: set[str] = set()
_lock = threading.Lock()


def register_secret(secret: str | None) -> None:
    """Scrub ``secret`` from every text :func:`redact` sees from now on, in this process."""
    if secret:
        with _lock:
            _secrets.add(secret)


def forget_secrets() -> None:
    """Forget every registered secret (the CLI does, at the start and end of a command)."""
    with _lock:
        _secrets.clear()


def _forms(extra: str | None) -> list[str]:
    with _lock:
        secrets = set(_secrets)
    if extra:
        secrets.add(extra)
    forms = set()
    for secret in secrets:
        forms |= {secret, quote(secret, safe=""), quote(secret), quote_plus(secret)}
        forms.add(quote_plus(secret, safe="/"))
    return sorted(forms, key=len, reverse=True)  # the longest first


def redact(text: str, token: str | None = None) -> str:
    """``text`` with every known token (and ``token``), whole or in pieces, as ``***``."""
    forms = _forms(token)
    for form in forms:
        text = re.sub(re.escape(form), MASK, text, flags=re.IGNORECASE)
    text = _QUERY_TOKEN.sub(r"\g<1>" + MASK, text)
    return _scrub_pieces(text, forms)


def cut(text: str, limit: int, token: str | None = None) -> str:
    """``text`` redacted, then shortened to ``limit`` characters (``…`` marks a cut)."""
    text = redact(text, token)
    if len(text) > limit:
        text = text[:limit] + "…"
    return redact(text, token)


def _scrub_pieces(text: str, forms: list[str]) -> str:
    """Replace each run of >= MIN_PIECE characters that is a substring of a form."""
    lowered = [f.lower() for f in forms if len(f) >= MIN_PIECE]
    if not lowered or len(text) < MIN_PIECE:
        return text
    windows = {f[i : i + MIN_PIECE] for f in lowered for i in range(len(f) - MIN_PIECE + 1)}
    low = text.lower()
    out, start, p = [], 0, 0
    while p <= len(text) - MIN_PIECE:
        if low[p : p + MIN_PIECE] not in windows:
            p += 1
            continue
        end = p + MIN_PIECE
        while end < len(text) and any(low[p : end + 1] in f for f in lowered):
            end += 1
        out.append(text[start:p])
        out.append(MASK)
        start = p = end
    out.append(text[start:])
    return "".join(out)


class RedactingFilter(logging.Filter):
    """Redacts a log record's message (httpx logs every request URL, httpcore headers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.msg = redact(record.getMessage())
            record.args = ()
        else:
            record.msg = redact(str(record.msg))
        return True


_FILTER = RedactingFilter()
_HTTP_LOGGERS = ("httpx", "httpcore", "httpcore.connection", "httpcore.http11",
                 "httpcore.http2", "httpcore.proxy", "httpcore.socks")  # fmt: skip


def filter_http_logs() -> None:
    """Put the redacting filter on httpx's and httpcore's loggers (known, or created since)."""
    names = [n for n in logging.Logger.manager.loggerDict if n.startswith(("httpx", "httpcore"))]
    for name in {*_HTTP_LOGGERS, *names}:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
