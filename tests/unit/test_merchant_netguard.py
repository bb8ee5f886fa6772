"""The network guard for notify URLs: only public addresses, unless allow-listed.

Name resolution is injected: no test here asks a real DNS server.
"""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from citywallet.merchant.netguard import (
    MAX_URL_LENGTH,
    NetguardError,
    check_url,
    is_forbidden,
    resolve_url,
)

PUBLIC_V4 = "93.184.215.14"
PUBLIC_V6 = "2606:2800:21f:cb07:6820:80da:af6b:8b2c"


class FakeResolver:
    """Answers from a table, and remembers which (host, port) it was asked."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.asked: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append((host, port))
        return self.answers.get(host, [])


def resolver(answers: dict[str, list[str]]) -> FakeResolver:
    """A fake resolver for these answers."""
    return FakeResolver(answers)


def refusal(url: str, allow: tuple[str, ...], resolve: FakeResolver) -> str | None:
    """The guard's refusal code for ``url``, or None if it accepts it."""
    try:
        check_url(url, allow_hosts=allow, resolve=resolve)
    except NetguardError as exc:
        return exc.code
    return None


def code_of(url: str, answers: list[str], allow: tuple[str, ...] = ()) -> str | None:
    """The refusal code for ``url`` when its host resolves to ``answers`` (None: accepted)."""
    return refusal(url, allow, resolver({"hooks.example.com": answers}))


# --- every forbidden range ----------------------------------------------------------------

FORBIDDEN = {
    "loopback v4": ["127.0.0.1", "127.255.255.254"],
    "loopback v6": ["::1"],
    "rfc1918": ["10.0.0.1", "10.255.255.255", "172.16.0.1", "172.31.255.255", "192.168.1.1"],
    "unique local v6": ["fc00::1", "fd12:3456:789a::1"],
    "link-local v4 and cloud metadata": ["169.254.0.1", "169.254.169.254"],
    "link-local v6": ["fe80::1", "febf::1"],
    "unspecified": ["0.0.0.0", "::"],
    "this network": ["0.1.2.3"],
    "multicast": ["224.0.0.1", "239.255.255.250", "ff02::1", "ff0e::1"],
    "reserved and broadcast": ["240.0.0.1", "255.255.255.255"],
    "shared address space": ["100.64.0.1", "100.127.255.254"],
    "documentation and benchmarking": ["192.0.2.1", "198.51.100.7", "203.0.113.9", "198.18.0.1"],
    "ipv4-mapped": ["::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254"],
    "nat64 of private": ["64:ff9b::a00:1", "64:ff9b::a9fe:a9fe"],
    "6to4 of loopback": ["2002:7f00:1::1"],
    "site-local v6": ["fec0::1"],
    "documentation v6": ["2001:db8::1"],
}


@pytest.mark.parametrize(
    "address", [a for group in FORBIDDEN.values() for a in group], ids=lambda a: a
)
def test_every_forbidden_range_is_refused(address: str) -> None:
    assert is_forbidden(ipaddress.ip_address(address))
    assert code_of("https://hooks.example.com/notify", [address]) == "notify_url_forbidden"


@pytest.mark.parametrize(
    "address",
    [PUBLIC_V4, "8.8.8.8", "1.1.1.1", PUBLIC_V6, "::ffff:8.8.8.8", "64:ff9b::808:808"],
)
def test_public_addresses_pass(address: str) -> None:
    assert not is_forbidden(ipaddress.ip_address(address))
    assert code_of("https://hooks.example.com/notify", [address]) is None


@given(st.ip_addresses(v=4, network="10.0.0.0/8") | st.ip_addresses(v=4, network="127.0.0.0/8"))
def test_any_private_or_loopback_v4_is_forbidden(ip: ipaddress.IPv4Address) -> None:
    assert is_forbidden(ip)
    assert is_forbidden(ipaddress.IPv6Address(f"::ffff:{ip}"))


@given(
    st.sampled_from(["172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10"]).flatmap(
        lambda net: st.ip_addresses(v=4, network=net)
    )
)
def test_any_address_of_the_other_v4_ranges_is_forbidden(ip: ipaddress.IPv4Address) -> None:
    assert is_forbidden(ip)


@given(
    st.sampled_from(["fc00::/7", "fe80::/10", "ff00::/8"]).flatmap(
        lambda net: st.ip_addresses(v=6, network=net)
    )
)
def test_any_address_of_the_v6_ranges_is_forbidden(ip: ipaddress.IPv6Address) -> None:
    assert is_forbidden(ip)


@given(st.ip_addresses(v=4))
def test_mapped_v6_is_judged_like_its_v4(ip: ipaddress.IPv4Address) -> None:
    assert is_forbidden(ipaddress.IPv6Address(f"::ffff:{ip}")) == is_forbidden(ip)


# --- mixed answers and the allow-list -----------------------------------------------------


def test_one_private_answer_among_public_ones_forbids() -> None:
    assert code_of("https://hooks.example.com/", [PUBLIC_V4, "10.0.0.5"]) == "notify_url_forbidden"
    assert code_of("https://hooks.example.com/", ["::1", PUBLIC_V4]) == "notify_url_forbidden"
    assert code_of("https://hooks.example.com/", [PUBLIC_V4, PUBLIC_V6]) is None


def test_allow_list_by_host() -> None:
    allow = ("Hooks.Example.com",)
    assert code_of("https://hooks.example.com/x", ["127.0.0.1"], allow) is None
    assert code_of("https://hooks.example.com/x", ["10.1.2.3", "::1"], allow) is None
    assert code_of("http://hooks.example.com:8080/x", ["127.0.0.1"], allow) is None
    assert code_of("https://other.example.com/x", ["127.0.0.1"], allow) == "notify_url_invalid"


def test_allow_list_by_ip() -> None:
    allow = ("127.0.0.1", "::1")
    assert code_of("https://hooks.example.com/", ["127.0.0.1"], allow) is None
    assert code_of("https://hooks.example.com/", ["::1", "127.0.0.1"], allow) is None
    # Only the listed addresses: a neighbour on the same network is still refused.
    assert code_of("https://hooks.example.com/", ["127.0.0.1", "127.0.0.2"], allow) == (
        "notify_url_forbidden"
    )
    assert check_url("http://127.0.0.1:8000/hook", allow_hosts=allow) == (
        "http://127.0.0.1:8000/hook"
    )
    assert check_url("https://[0:0::1]/hook", allow_hosts=allow) == "https://[0:0::1]/hook"


def test_ip_literals_are_checked_without_resolving() -> None:
    resolve = resolver({})
    for url in ("https://127.0.0.1/", "https://[::1]/", "https://169.254.169.254/latest"):
        with pytest.raises(NetguardError) as caught:
            check_url(url, allow_hosts=(), resolve=resolve)
        assert caught.value.code == "notify_url_forbidden"
    assert check_url(f"https://{PUBLIC_V4}/hook", allow_hosts=(), resolve=resolve)
    assert resolve.asked == []


def test_resolution_asks_for_the_url_port_and_returns_every_address() -> None:
    resolve = resolver({"hooks.example.com": [PUBLIC_V4, PUBLIC_V6]})
    destination = resolve_url(
        "https://HOOKS.example.com.:8443/p?q=1", allow_hosts=(), resolve=resolve
    )
    assert destination.host == "hooks.example.com"
    assert destination.port == 8443
    assert destination.scheme == "https"
    assert destination.addresses == (PUBLIC_V4, PUBLIC_V6)
    assert destination.url == "https://HOOKS.example.com.:8443/p?q=1"
    assert resolve.asked == [("hooks.example.com", 8443)]


def test_international_host_names_are_resolved_in_idna() -> None:
    resolve = resolver({"xn--fsqu00a.example": [PUBLIC_V4]})
    assert check_url("https://例子.example/hook", allow_hosts=(), resolve=resolve)


# --- malformed URLs -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.com/notify",  # plain http, not allow-listed
        "ftp://hooks.example.com/notify",
        "file:///etc/passwd",
        "gopher://hooks.example.com:70/_",
        "hooks.example.com/notify",
        "https:///notify",
        "https://user:pass@hooks.example.com/notify",
        "https://user@hooks.example.com/notify",
        "https://hooks.example.com:99999/notify",
        "https://hooks.example.com:port/notify",
        "https://hooks.example.com/no tify",
        "https://hooks.example.com/\r\nX-Injected: 1",
        "https://hooks.example.com\\@evil.example/",
        "https://[fe80::1%25eth0]/notify",
        "",
    ],
)
def test_malformed_urls_are_invalid(url: str) -> None:
    assert code_of(url, [PUBLIC_V4]) == "notify_url_invalid"


def test_length_limit() -> None:
    base = "https://hooks.example.com/"
    assert code_of(base + "a" * (MAX_URL_LENGTH - len(base)), [PUBLIC_V4]) is None
    assert code_of(base + "a" * (MAX_URL_LENGTH - len(base) + 1), [PUBLIC_V4]) == (
        "notify_url_invalid"
    )


def test_unresolvable_or_garbage_answers_are_invalid() -> None:
    assert code_of("https://hooks.example.com/", []) == "notify_url_invalid"
    assert code_of("https://hooks.example.com/", ["not-an-address"]) == "notify_url_invalid"


def test_the_error_is_a_value_error_with_a_message() -> None:
    with pytest.raises(ValueError, match="non-public address"):
        check_url(
            "https://hooks.example.com/",
            allow_hosts=(),
            resolve=resolver({"hooks.example.com": ["10.0.0.1"]}),
        )


CODES = {None, "notify_url_invalid", "notify_url_forbidden"}


@given(st.text(max_size=60))
def test_never_raises_anything_but_netguard_error(tail: str) -> None:
    assert code_of("https://hooks.example.com/" + tail, [PUBLIC_V4]) in CODES


@given(st.text(max_size=40))
def test_arbitrary_strings_never_crash(url: str) -> None:
    assert refusal(url, ("localhost",), resolver({})) in CODES
