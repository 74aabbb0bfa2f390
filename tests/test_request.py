"""Request parsing: request ids, trusted proxies, client IPs, user agents."""

from __future__ import annotations

import ipaddress
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mongoengine_activity import ConfigurationError
from mongoengine_activity.integrations._request import (
    MAX_REQUEST_ID_LENGTH,
    MAX_USER_AGENT_LENGTH,
    RequestInfo,
    RequestReader,
    TrustedProxies,
    clean_ip,
    clean_request_id,
    clean_user_agent,
    header_text,
)

HEADER_VALUES = st.one_of(st.none(), st.text(max_size=2000), st.binary(max_size=2000))


# --- request ids


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("abc-123", "abc-123"),
        (b"abc-123", "abc-123"),
        ("  7f3a.b_c:d+e/f=  ", "7f3a.b_c:d+e/f="),
        ("x" * MAX_REQUEST_ID_LENGTH, "x" * MAX_REQUEST_ID_LENGTH),
        ("x" * (MAX_REQUEST_ID_LENGTH + 1), None),
        ("", None),
        ("   ", None),
        (None, None),
        ("abc\r\nSet-Cookie: x=1", None),
        ("abc def", None),
        ("<script>", None),
        ("caf\u00e9", None),
        ("id\x00", None),
        ("${jndi:ldap://x}", None),
    ],
    ids=[
        "plain",
        "bytes",
        "stripped",
        "longest",
        "too-long",
        "empty",
        "blank",
        "missing",
        "header-injection",
        "space",
        "markup",
        "non-ascii",
        "nul",
        "template",
    ],
)
def test_clean_request_id(value: str | bytes | None, expected: str | None) -> None:
    assert clean_request_id(value) == expected


@given(HEADER_VALUES)
def test_clean_request_id_keeps_only_short_safe_ids(value: str | bytes | None) -> None:
    cleaned = clean_request_id(value)
    if cleaned is not None:
        assert 1 <= len(cleaned) <= MAX_REQUEST_ID_LENGTH
        assert all(
            char.isascii() and (char.isalnum() or char in "-_.:+/=") for char in cleaned
        )


@given(st.from_regex(r"[A-Za-z0-9\-_.:+/=]{1,128}", fullmatch=True))
def test_clean_request_id_keeps_every_safe_id(value: str) -> None:
    assert clean_request_id(value) == value


# --- IP addresses


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("203.0.113.7", "203.0.113.7"),
        (" 203.0.113.7 ", "203.0.113.7"),
        ("203.0.113.7:51000", "203.0.113.7"),
        ("2001:DB8::1", "2001:db8::1"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("::ffff:10.1.2.3", "10.1.2.3"),
        (b"10.0.0.1", "10.0.0.1"),
        ("unknown", None),
        ("_hidden", None),
        ("999.1.1.1", None),
        ("10.0.0.1\r\nX: y", None),
        ("", None),
        (None, None),
        ("1" * 500, None),
    ],
    ids=[
        "ipv4",
        "blanks",
        "ipv4-port",
        "ipv6-canonical",
        "ipv6-bracket-port",
        "ipv6-bracket",
        "ipv4-mapped",
        "bytes",
        "unknown",
        "obfuscated",
        "out-of-range",
        "injection",
        "empty",
        "missing",
        "huge",
    ],
)
def test_clean_ip(value: str | bytes | None, expected: str | None) -> None:
    assert clean_ip(value) == expected


@given(HEADER_VALUES)
def test_clean_ip_returns_a_valid_address_or_nothing(
    value: str | bytes | None,
) -> None:
    cleaned = clean_ip(value)
    if cleaned is not None:
        assert str(ipaddress.ip_address(cleaned)) == cleaned


@given(st.ip_addresses())
def test_clean_ip_keeps_every_address(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        assert clean_ip(str(address)) == str(address.ipv4_mapped)
    else:
        assert clean_ip(str(address)) == str(address)


# --- user agents


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Mozilla/5.0 (X11)", "Mozilla/5.0 (X11)"),
        ("curl/8\r\n[INFO] forged line", "curl/8[INFO] forged line"),
        ("a\x00b\x1bc\x7fd", "abcd"),
        ("evil\u202etxt.exe", "eviltxt.exe"),
        ("line\u2028break", "linebreak"),
        ("  padded  ", "padded"),
        ("\r\n", None),
        ("", None),
        (None, None),
        ("Caf\u00e9Browser/1".encode(), "Caf\u00e9Browser/1"),
        ("Caf\u00e9Browser/1".encode().decode("latin-1"), "Caf\u00e9Browser/1"),
        (b"bad\xffbyte", "bad\ufffdbyte"),
    ],
    ids=[
        "plain",
        "crlf",
        "controls",
        "bidi-override",
        "line-separator",
        "blanks",
        "only-controls",
        "empty",
        "missing",
        "utf8-bytes",
        "utf8-through-wsgi-latin1",
        "undecodable",
    ],
)
def test_clean_user_agent(value: str | bytes | None, expected: str | None) -> None:
    assert clean_user_agent(value) == expected


def test_clean_user_agent_cuts_to_the_documented_length() -> None:
    assert clean_user_agent("x" * 10_000) == "x" * MAX_USER_AGENT_LENGTH
    assert clean_user_agent("abcdef", max_length=3) == "abc"


@given(HEADER_VALUES)
def test_clean_user_agent_is_bounded_and_free_of_controls(
    value: str | bytes | None,
) -> None:
    cleaned = clean_user_agent(value)
    if cleaned is not None:
        assert 0 < len(cleaned) <= MAX_USER_AGENT_LENGTH
        assert cleaned == cleaned.strip()
        assert not any(
            unicodedata.category(char) in {"Cc", "Cf", "Cs", "Zl", "Zp"}
            for char in cleaned
        )
        cleaned.encode("utf-8")  # storable: no lone surrogates


@given(st.text(max_size=300))
def test_header_text_round_trips_utf8_through_wsgi(value: str) -> None:
    wsgi_value = value.encode("utf-8").decode("latin-1")
    assert header_text(wsgi_value) == value
    assert header_text(value.encode("utf-8")) == value


# --- trusted proxies


@pytest.mark.parametrize(
    ("trusted", "peer", "forwarded", "expected"),
    [
        ([], "203.0.113.7", ["1.2.3.4"], "203.0.113.7"),
        (["10.0.0.0/8"], "203.0.113.7", ["1.2.3.4"], "203.0.113.7"),
        (["10.0.0.0/8"], "10.0.0.2", ["198.51.100.9"], "198.51.100.9"),
        (["10.0.0.0/8"], "10.0.0.2", ["1.2.3.4, 198.51.100.9"], "198.51.100.9"),
        (["10.0.0.0/8"], "10.0.0.2", ["1.2.3.4", "198.51.100.9"], "198.51.100.9"),
        (["10.0.0.0/8"], "10.0.0.2", ["198.51.100.9, 10.0.0.3"], "198.51.100.9"),
        (["10.0.0.0/8"], "10.0.0.2", ["10.1.1.1, 10.0.0.3"], "10.1.1.1"),
        (["10.0.0.0/8"], "10.0.0.2", [], "10.0.0.2"),
        (["10.0.0.0/8"], "10.0.0.2", ["garbage, 198.51.100.9"], "198.51.100.9"),
        (["10.0.0.0/8"], "10.0.0.2", ["198.51.100.9, garbage"], "10.0.0.2"),
        (["10.0.0.0/8"], "::ffff:10.0.0.2", ["198.51.100.9"], "198.51.100.9"),
        (["10.0.0.5"], "10.0.0.6", ["198.51.100.9"], "10.0.0.6"),
        (["fd00::/8"], "fd00::1", ["[2001:db8::7]:443"], "2001:db8::7"),
        (["unix"], "", ["198.51.100.9"], "198.51.100.9"),
        (["unix"], None, ["198.51.100.9"], "198.51.100.9"),
        ([], None, ["198.51.100.9"], None),
        (["10.0.0.0/8"], "not-an-ip", ["198.51.100.9"], None),
    ],
    ids=[
        "no-proxies-spoof-ignored",
        "untrusted-peer-spoof-ignored",
        "trusted-peer",
        "client-prepended-spoof",
        "two-headers",
        "two-proxies",
        "all-trusted-leftmost",
        "trusted-without-header",
        "garbage-left-of-client",
        "garbage-from-a-proxy",
        "ipv4-mapped-peer",
        "single-address",
        "ipv6-range",
        "unix-socket-empty-peer",
        "unix-socket-no-peer",
        "no-peer-untrusted",
        "unparsable-peer",
    ],
)
def test_client_ip(
    trusted: list[str],
    peer: str | None,
    forwarded: list[str],
    expected: str | None,
) -> None:
    assert TrustedProxies(trusted).client_ip(peer, forwarded) == expected


def test_a_long_forwarded_chain_is_read_for_at_most_32_hops() -> None:
    chain = ", ".join(["10.0.0.9"] * 1000 + ["198.51.100.9"])
    assert TrustedProxies(["10.0.0.0/8"]).client_ip("10.0.0.2", [chain]) == (
        "198.51.100.9"
    )
    all_trusted = ", ".join(["203.0.113.1", *["10.0.0.9"] * 40])
    assert TrustedProxies(["10.0.0.0/8"]).client_ip("10.0.0.2", [all_trusted]) == (
        "10.0.0.9"
    )


@given(
    peer=st.ip_addresses(v=4)
    .filter(lambda address: address not in ipaddress.ip_network("10.0.0.0/8"))
    .map(str),
    forwarded=st.lists(st.text(max_size=60), max_size=5),
)
def test_an_untrusted_peer_is_the_client_whatever_it_sends(
    peer: str, forwarded: list[str]
) -> None:
    proxies = TrustedProxies(["10.0.0.0/8", "fd00::/8"])
    assert proxies.client_ip(peer, forwarded) == peer


@given(
    forwarded=st.lists(
        st.one_of(st.text(max_size=60), st.ip_addresses().map(str)), max_size=5
    )
)
def test_a_trusted_peer_yields_a_valid_address(forwarded: list[str]) -> None:
    result = TrustedProxies(["10.0.0.0/8"]).client_ip("10.0.0.1", forwarded)
    assert result is not None
    assert str(ipaddress.ip_address(result)) == result


@pytest.mark.parametrize(
    "entry", ["10.0.0.0/33", "proxy.local", "", "10.0.0.0/8/8"], ids=str
)
def test_a_bad_trusted_proxy_entry_is_a_configuration_error(entry: str) -> None:
    with pytest.raises(ConfigurationError, match="is not an IP address or CIDR"):
        TrustedProxies([entry])


def test_a_single_string_is_one_trusted_proxy() -> None:
    assert TrustedProxies("10.0.0.0/8").networks == (
        ipaddress.ip_network("10.0.0.0/8"),
    )


# --- the reader


def test_reader_generates_a_request_id_when_the_header_is_unsafe() -> None:
    reader = RequestReader(new_request_id=lambda: "generated")
    info = reader.read(peer="203.0.113.7", request_id="x" * 500, user_agent="curl\n/8")
    assert info == RequestInfo(
        request_id="generated", ip="203.0.113.7", user_agent="curl/8"
    )


def test_reader_reads_a_wsgi_environ() -> None:
    reader = RequestReader(trusted_proxies=["127.0.0.1"], request_id_header="X-Trace")
    info = reader.read_wsgi(
        {
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_X_TRACE": "abc",
            "HTTP_X_FORWARDED_FOR": "198.51.100.9",
            "HTTP_USER_AGENT": "ua",
        }
    )
    assert info == RequestInfo(request_id="abc", ip="198.51.100.9", user_agent="ua")


def test_reader_reads_an_asgi_scope() -> None:
    reader = RequestReader(trusted_proxies=["127.0.0.1"])
    info = reader.read_asgi(
        {
            "type": "http",
            "client": ("127.0.0.1", 5000),
            "headers": [
                (b"x-request-id", b"abc"),
                (b"x-forwarded-for", b"1.2.3.4"),
                (b"x-forwarded-for", b"198.51.100.9"),
                (b"user-agent", b"ua"),
            ],
        }
    )
    assert info == RequestInfo(request_id="abc", ip="198.51.100.9", user_agent="ua")


def test_reader_refuses_non_positive_limits() -> None:
    with pytest.raises(ConfigurationError, match="must be positive"):
        RequestReader(max_user_agent_length=0)


def test_the_shared_modules_import_no_web_framework() -> None:
    import subprocess
    import sys

    code = (
        "import sys;"
        "import mongoengine_activity.integrations._request,"
        " mongoengine_activity.integrations.wsgi,"
        " mongoengine_activity.integrations.asgi;"
        "print([m for m in ('flask', 'django', 'starlette', 'fastapi', 'werkzeug')"
        " if m in sys.modules])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
