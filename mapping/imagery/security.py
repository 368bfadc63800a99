"""Checks that keep a tile URL template and its responses safe: scheme, host, content type.

A template is checked once, when its config is validated; responses are checked per tile.
"""

from __future__ import annotations

import ipaddress
import re
import string
from collections.abc import Collection
from urllib.parse import urlsplit

PLACEHOLDERS = frozenset({"z", "x", "y", "token"})
REQUIRED_PLACEHOLDERS = frozenset({"z", "x", "y"})
IMAGE_CONTENT_TYPES = frozenset({"image/png", "image/jpeg", "image/webp"})
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)


class UnsafeUrl(ValueError):
    """The URL template breaks a rule; the message says which (and never holds a secret)."""


def template_placeholders(template: str) -> set[str]:
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise UnsafeUrl(f"malformed placeholders in URL template: {exc}") from None
    return names


def is_ip_literal(host: str) -> bool:
    """True for IPv4/IPv6 literals, including the shorthand forms resolvers accept (0x7f.1)."""
    h = host.strip("[]")
    try:
        ipaddress.ip_address(h)
        return True
    except ValueError:
        pass
    # inet_aton-style forms: "2130706433", "0x7f.1", "127.1" — all digits/hex and dots.
    return bool(re.fullmatch(r"(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]+|[0-9]+)){0,3}", h, re.I))


def host_allowed(host: str, allowed_hosts: Collection[str]) -> bool:
    """Exact match, or a ``*.example.com`` entry matching any subdomain of example.com."""
    host = host.lower().rstrip(".")
    for entry in allowed_hosts:
        e = entry.lower().rstrip(".")
        if host == e or (e.startswith("*.") and host.endswith(e[1:]) and len(host) > len(e) - 1):
            return True
    return False


def check_url_template(
    template: str,
    *,
    allowed_hosts: Collection[str],
    allow_loopback_http: bool = False,
) -> None:
    """Raise :class:`UnsafeUrl` unless the XYZ template is safe to request.

    Rules: placeholders only {z} {x} {y} {token}, with {z} {x} {y} all present and none in the
    scheme/host/port; https, or http to a loopback host when ``allow_loopback_http`` (tests);
    no user:password@; no IP literal (loopback ones only when loopback is allowed); the host on
    the allow-list (loopback hosts are implicitly allowed when loopback is allowed).
    """
    names = template_placeholders(template)
    unknown = names - PLACEHOLDERS
    if unknown:
        raise UnsafeUrl(
            f"unknown placeholders {sorted(unknown)}; allowed: {{z}} {{x}} {{y}} {{token}}"
        )
    missing = REQUIRED_PLACEHOLDERS - names
    if missing:
        raise UnsafeUrl(f"URL template lacks {', '.join('{' + m + '}' for m in sorted(missing))}")
    sample = template.format(z=16, x=1, y=1, token="TOKEN")
    parts = urlsplit(sample)
    if parts.netloc != urlsplit(template.replace("{", "").replace("}", "")).netloc:
        raise UnsafeUrl("placeholders are not allowed in the host part of the URL")
    if "@" in parts.netloc or parts.username is not None or parts.password is not None:
        raise UnsafeUrl("credentials in the URL (user:password@host) are not allowed")
    host = (parts.hostname or "").lower()
    if not host:
        raise UnsafeUrl("URL template has no host")
    try:
        _ = parts.port
    except ValueError:
        raise UnsafeUrl("URL template has an invalid port") from None
    loopback = host in LOOPBACK_HOSTS
    if parts.scheme == "http":
        if not (allow_loopback_http and loopback):
            raise UnsafeUrl(
                "plain http is only allowed for loopback hosts in test setups; use https"
            )
    elif parts.scheme != "https":
        raise UnsafeUrl(f"scheme {parts.scheme!r} is not allowed; use https")
    if loopback and allow_loopback_http:
        return
    if is_ip_literal(host) or loopback:
        raise UnsafeUrl(f"IP-literal or loopback host {host!r} is not allowed")
    if not _HOSTNAME.match(host):
        raise UnsafeUrl(f"{host!r} is not a valid host name")
    if not host_allowed(host, allowed_hosts):
        raise UnsafeUrl(f"host {host!r} is not on the allow-list")


def media_type(content_type: str | None) -> str:
    """The bare media type of a Content-Type header ("image/png; q=1" -> "image/png")."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def same_origin(a: str, b: str) -> bool:
    pa, pb = urlsplit(a), urlsplit(b)
    return (pa.scheme, pa.hostname, pa.port) == (pb.scheme, pb.hostname, pb.port)
