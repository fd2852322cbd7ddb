"""Endpoint addresses: the public form of a URL (no credentials) and whether an endpoint is paid."""

from __future__ import annotations

import ipaddress
import socket
from typing import Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

OPENAI_URL = "https://api.openai.com/v1"  # the SDK's endpoint when base_url is not set
_SECRET_QUERY = ("key", "token", "secret", "sig", "password", "auth")


def public_url(url: str | None) -> str | None:
    """``url`` without user:password and without query parameters that look like credentials."""
    if not url:
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host  # IPv6
    netloc = f"{host}:{parts.port}" if parts.port else host
    query = [(k, v) for k, v in parse_qsl(parts.query) if not any(s in k.lower() for s in _SECRET_QUERY)]
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(query), ""))


def endpoint_name(url: str | None) -> str:
    """The endpoint as users see it in messages and ledger scopes."""
    return public_url(url) or OPENAI_URL


def _private(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        addresses = {ipaddress.ip_address(host)}
    except ValueError:
        try:
            addresses = {ipaddress.ip_address(info[4][0].split("%")[0]) for info in socket.getaddrinfo(host, None)}
        except (OSError, UnicodeError, ValueError):
            return False  # unresolvable: treated as paid (refusing an unpriced model is the safe side)
    return bool(addresses) and all(a.is_loopback or a.is_private or a.is_link_local for a in addresses)


def is_paid(paid: Literal["auto"] | bool, url: str | None) -> bool:
    """``paid: auto`` means paid unless the endpoint is on loopback or a private network (vLLM, llama.cpp,
    ``transformers serve`` on your own machines); OpenAI's own endpoint is paid."""
    if isinstance(paid, bool):
        return paid
    return not _private(urlsplit(url).hostname or "") if url else True
