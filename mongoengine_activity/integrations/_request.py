"""What a request tells about itself, read without any web framework.

Every value here comes from the client or from a proxy in front of the
application, so each is bounded before it reaches the activity log:

- the request id is taken from ``X-Request-ID`` only when it is 1 to
  :data:`MAX_REQUEST_ID_LENGTH` characters of letters, digits and ``-_.:+/=``;
  otherwise a new one is generated;
- the client IP is the peer address, or, when the peer is a trusted proxy, the
  address it reports in ``X-Forwarded-For``; it is always a valid IPv4 or IPv6
  address, or ``None``;
- the user agent loses every control character and is cut to
  :data:`MAX_USER_AGENT_LENGTH` characters.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..context import deferred
from ..errors import ConfigurationError

__all__ = [
    "MAX_REQUEST_ID_LENGTH",
    "MAX_USER_AGENT_LENGTH",
    "RequestInfo",
    "RequestReader",
    "TrustedProxies",
    "clean_ip",
    "clean_request_id",
    "clean_user_agent",
    "generate_request_id",
    "header_text",
]

MAX_REQUEST_ID_LENGTH = 128
MAX_USER_AGENT_LENGTH = 512
# Longer than any written address (IPv6 with a zone and a port), so parsing is
# never asked to look at a huge string.
_MAX_ADDRESS_LENGTH = 100
# A header longer than this is not read further, whatever it holds.
_MAX_HEADER_LENGTH = 8192
_MAX_FORWARDED_HOPS = 32

_REQUEST_ID = re.compile(r"[A-Za-z0-9\-_.:+/=]+")
# Control, format (bidi overrides, zero-width), separator and surrogate code
# points: nothing a user agent needs, and all of them can disguise log lines.
_DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def header_text(value: str | bytes | None) -> str | None:
    """Decode a header value as the client most likely sent it (UTF-8).

    ASGI hands headers over as bytes; WSGI as ``str`` decoded from Latin-1, which
    is undone here so a UTF-8 header reads right. Undecodable bytes become
    U+FFFD. Values over 8 KiB are cut first.
    """
    if value is None:
        return None
    if isinstance(value, str):
        text = value[:_MAX_HEADER_LENGTH]
        try:
            raw = text.encode("latin-1")
        except UnicodeEncodeError:
            return text
    else:
        raw = value[:_MAX_HEADER_LENGTH]

    return raw.decode("utf-8", errors="replace")


def generate_request_id() -> str:
    """A new random request id: 32 hexadecimal digits."""
    return uuid.uuid4().hex


def clean_request_id(
    value: str | bytes | None, *, max_length: int = MAX_REQUEST_ID_LENGTH
) -> str | None:
    """Return ``value`` if it is a safe request id, else ``None``.

    Safe means 1 to ``max_length`` characters, each a letter, a digit or one
    of ``-_.:+/=``, after stripping surrounding blanks.
    """
    text = header_text(value)
    if text is None:
        return None
    text = text.strip()
    if not 0 < len(text) <= max_length or not _REQUEST_ID.fullmatch(text):
        return None

    return text


def _address(value: str | bytes | None) -> Address | None:
    text = header_text(value)
    if text is None:
        return None
    text = text.strip()
    if not text or len(text) > _MAX_ADDRESS_LENGTH:
        return None
    if text.startswith("["):
        # "[2001:db8::1]:8080" or "[2001:db8::1]"
        text = text[1:].split("]", 1)[0]
    elif text.count(":") == 1:
        # "203.0.113.7:51000": an IPv4 address with a port
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped

    return address


def clean_ip(value: str | bytes | None) -> str | None:
    """Return ``value`` as a canonical IP address string, or ``None``.

    Accepts an IPv4 or IPv6 address, optionally with a port (``1.2.3.4:80``,
    ``[::1]:80``); IPv4-mapped IPv6 addresses come back as IPv4.
    """
    address = _address(value)
    return None if address is None else str(address)


def clean_user_agent(
    value: str | bytes | None, *, max_length: int = MAX_USER_AGENT_LENGTH
) -> str | None:
    """Return the user agent without control characters, cut to ``max_length``.

    Blank or empty results are ``None``.
    """
    text = header_text(value)
    if text is None:
        return None
    if not (text.isascii() and text.isprintable()):
        text = "".join(
            char
            for char in text
            if unicodedata.category(char) not in _DROPPED_CATEGORIES
        )
    text = text.strip()[:max_length].strip()

    return text or None


class TrustedProxies:
    """The proxies whose ``X-Forwarded-For`` is believed.

    Entries are addresses or CIDR ranges (``"10.0.0.0/8"``, ``"::1"``), and
    ``"unix"`` for a proxy connected over a Unix socket (no peer address). A
    bad entry raises :class:`~mongoengine_activity.errors.ConfigurationError`.
    """

    def __init__(self, entries: Iterable[str] = ()) -> None:
        if isinstance(entries, str):
            entries = [entries]
        networks: list[Network] = []
        self.unix = False
        for entry in entries:
            if entry == "unix":
                self.unix = True
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except (ValueError, TypeError, AttributeError):
                raise ConfigurationError(
                    f"trusted_proxies: {entry!r} is not an IP address or CIDR "
                    "range; use entries such as '10.0.0.0/8' or '::1'"
                ) from None
        self.networks = tuple(networks)

    def __bool__(self) -> bool:
        return bool(self.networks) or self.unix

    def trusts(self, address: Address | None) -> bool:
        if address is None:
            return self.unix

        return any(address in network for network in self.networks)

    def client_ip(
        self, peer: str | bytes | None, forwarded_for: Iterable[str | bytes] = ()
    ) -> str | None:
        """Return the client's address given the peer and ``X-Forwarded-For``.

        The header is read only when the peer is trusted, from right to left:
        the first address not of a trusted proxy is the client. A malformed
        entry ends the walk there (nothing left of it can be believed), and the
        last trusted hop is returned; so is the leftmost address when every hop
        is trusted.
        """
        peer_address = _address(peer)
        if peer_address is None and peer not in (None, "", b""):
            # A peer we cannot parse is not a network address: not a proxy.
            return None
        if not self.trusts(peer_address):
            return None if peer_address is None else str(peer_address)

        hops: list[str | bytes] = []
        for header in forwarded_for:
            # Proxies append on the right: keep the end of an oversized header.
            text = header_text(header[-_MAX_HEADER_LENGTH:]) or ""
            hops.extend(text.split(","))
        client = peer_address
        for hop in reversed(hops[-_MAX_FORWARDED_HOPS:]):
            address = _address(hop)
            if address is None:
                break
            client = address
            if not self.trusts(address):
                break

        return None if client is None else str(client)


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """The bounded values one request contributes to the activity context."""

    request_id: str
    ip: str | None
    user_agent: str | None

    def context_values(
        self,
        *,
        user: Callable[[], Any] | None = None,
        trace_id: Callable[[], Any] | None = None,
    ) -> dict[str, Any]:
        """Keyword arguments for ``activity_context`` (deferred user and trace)."""
        values: dict[str, Any] = {
            "request_id": self.request_id,
            "ip": self.ip,
            "user_agent": self.user_agent,
        }
        if user is not None:
            values["user_id"] = deferred(user)
        if trace_id is not None:
            values["trace_id"] = deferred(trace_id)

        return values


class RequestReader:
    """Reads :class:`RequestInfo` from a peer address and three headers.

    Shared by every framework integration; each passes what its request object
    holds. ``trusted_proxies`` are addresses or CIDR ranges (see
    :class:`TrustedProxies`); ``request_id_header`` is read case-insensitively.
    """

    def __init__(
        self,
        *,
        trusted_proxies: Iterable[str] = (),
        request_id_header: str = "X-Request-ID",
        max_user_agent_length: int = MAX_USER_AGENT_LENGTH,
        max_request_id_length: int = MAX_REQUEST_ID_LENGTH,
        new_request_id: Callable[[], str] = generate_request_id,
    ) -> None:
        if max_user_agent_length < 1 or max_request_id_length < 1:
            raise ConfigurationError(
                "max_user_agent_length and max_request_id_length must be positive"
            )
        self.trusted_proxies = TrustedProxies(trusted_proxies)
        self.request_id_header = request_id_header
        self.max_user_agent_length = max_user_agent_length
        self.max_request_id_length = max_request_id_length
        self.new_request_id = new_request_id

    @property
    def wsgi_request_id_key(self) -> str:
        """The WSGI environ key of the request id header."""
        return "HTTP_" + self.request_id_header.upper().replace("-", "_")

    def read(
        self,
        *,
        peer: str | bytes | None,
        request_id: str | bytes | None,
        forwarded_for: Iterable[str | bytes] = (),
        user_agent: str | bytes | None,
    ) -> RequestInfo:
        return RequestInfo(
            request_id=clean_request_id(
                request_id, max_length=self.max_request_id_length
            )
            or self.new_request_id(),
            ip=self.trusted_proxies.client_ip(peer, forwarded_for),
            user_agent=clean_user_agent(
                user_agent, max_length=self.max_user_agent_length
            ),
        )

    def read_wsgi(self, environ: Mapping[str, Any]) -> RequestInfo:
        """Read a WSGI environ (also Django's ``request.META``)."""
        forwarded = environ.get("HTTP_X_FORWARDED_FOR")
        return self.read(
            peer=environ.get("REMOTE_ADDR"),
            request_id=environ.get(self.wsgi_request_id_key),
            forwarded_for=() if forwarded is None else (forwarded,),
            user_agent=environ.get("HTTP_USER_AGENT"),
        )

    def read_asgi(self, scope: Mapping[str, Any]) -> RequestInfo:
        """Read an ASGI ``http`` or ``websocket`` scope."""
        wanted = self.request_id_header.lower().encode("latin-1")
        request_id: bytes | None = None
        user_agent: bytes | None = None
        forwarded: list[bytes] = []
        for name, value in scope.get("headers") or ():
            name = bytes(name).lower()
            if name == wanted and request_id is None:
                request_id = bytes(value)
            elif name == b"user-agent" and user_agent is None:
                user_agent = bytes(value)
            elif name == b"x-forwarded-for":
                forwarded.append(bytes(value))
        client = scope.get("client")
        return self.read(
            peer=client[0] if client else None,
            request_id=request_id,
            forwarded_for=forwarded,
            user_agent=user_agent,
        )
