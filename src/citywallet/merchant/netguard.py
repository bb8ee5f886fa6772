"""The network guard for merchants' notify URLs: webhooks must not reach inside our network.

A merchant chooses where we POST, so a careless or hostile URL could make our servers call
the cloud metadata service, a database on the private network, or our own admin ports
(server-side request forgery). The guard accepts only ``https`` URLs whose host resolves to
public addresses. It runs when a URL is saved and again before every delivery, and the
delivery connects to exactly the addresses checked here (:func:`resolve_url`), so a DNS
answer that changes in between (DNS rebinding) cannot slip a private address through.

``allow_hosts`` lists host names or IP addresses that may be loopback or private anyway (a
developer's receiver on 127.0.0.1); only those may also use plain ``http``. Pure: no
database, no web framework; name resolution is injected.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_URL_LENGTH = 500

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]

# Ranges refused although some Python versions call parts of them global.
_EXTRA_BLOCKED = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",  # "this network"
        "100.64.0.0/10",  # shared address space (carrier-grade NAT)
        "192.0.0.0/24",  # IETF protocol assignments
        "198.18.0.0/15",  # benchmarking
        "240.0.0.0/4",  # reserved, incl. broadcast
        "fc00::/7",  # unique local
        "fec0::/10",  # site-local (deprecated, still routed by some stacks)
        "64:ff9b:1::/48",  # local-use IPv4/IPv6 translation
    )
)
# IPv6 prefixes that carry an IPv4 address a gateway will forward to.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class NetguardError(ValueError):
    """A notify URL is malformed (``notify_url_invalid``) or points somewhere we never call
    (``notify_url_forbidden``)."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Destination:
    """A checked URL and the addresses a delivery may connect to."""

    url: str
    scheme: str
    host: str  # lower case, IDNA-encoded, without brackets
    port: int
    addresses: tuple[str, ...]  # every answer passed the guard


def system_resolve(host: str, port: int) -> list[str]:
    """The host's addresses from the operating system's resolver (``getaddrinfo``)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def check_url(url: str, *, allow_hosts: Sequence[str], resolve: Resolver = system_resolve) -> str:
    """The URL unchanged if webhooks may be sent to it; raises :class:`NetguardError`."""
    return resolve_url(url, allow_hosts=allow_hosts, resolve=resolve).url


def resolve_url(
    url: str, *, allow_hosts: Sequence[str], resolve: Resolver = system_resolve
) -> Destination:
    """Check the URL and resolve its host; every address must be allowed."""
    scheme, host, port = _parse(url)
    allowed_names, allowed_ips = _allow_list(allow_hosts)
    literal = _ip(host)
    host_allowed = host in allowed_names or (literal is not None and literal in allowed_ips)
    if scheme != "https" and not (scheme == "http" and host_allowed):
        raise NetguardError("The notify URL must use https.", code="notify_url_invalid")
    answers = [host] if literal is not None else resolve(host, port)
    addresses: list[Address] = []
    for answer in answers:
        ip = _ip(answer)
        if ip is None:
            raise NetguardError(
                f"The host {host!r} resolved to something that is not an address.",
                code="notify_url_invalid",
            )
        addresses.append(ip)
    if not addresses:
        raise NetguardError(f"The host {host!r} does not resolve.", code="notify_url_invalid")
    for ip in addresses:
        if not host_allowed and ip not in allowed_ips and is_forbidden(ip):
            raise NetguardError(
                f"The host {host!r} resolves to a non-public address ({ip}).",
                code="notify_url_forbidden",
            )
    return Destination(url, scheme, host, port, tuple(str(ip) for ip in addresses))


def is_forbidden(ip: Address) -> bool:
    """Whether an address is loopback, private, link-local, reserved or otherwise not public."""
    embedded = _embedded_ipv4(ip)
    if embedded is not None:  # a gateway or our own stack will connect to the IPv4 address
        return is_forbidden(embedded)
    return (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_unspecified
        or ip.is_multicast
        or ip.is_reserved
        or (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local)
        or any(ip in net for net in _EXTRA_BLOCKED if net.version == ip.version)
        or not ip.is_global
    )


def _embedded_ipv4(ip: Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, NAT64, 6to4), if any."""
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _parse(url: str) -> tuple[str, str, int]:
    """Scheme, host and port of a well-formed absolute URL without credentials."""
    if len(url) > MAX_URL_LENGTH:
        raise NetguardError(
            f"The notify URL is longer than {MAX_URL_LENGTH} characters.",
            code="notify_url_invalid",
        )
    if not url.isprintable() or any(c.isspace() for c in url) or "\\" in url:
        raise NetguardError(
            "The notify URL contains spaces or control characters.", code="notify_url_invalid"
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise NetguardError(
            f"The notify URL is malformed: {exc}.", code="notify_url_invalid"
        ) from None
    scheme = parts.scheme.lower()
    if scheme not in {"https", "http"}:
        raise NetguardError("The notify URL must use https.", code="notify_url_invalid")
    if "@" in parts.netloc:
        raise NetguardError(
            "The notify URL must not contain a user name or password.", code="notify_url_invalid"
        )
    host = _normalize_host(parts.hostname or "")
    if not host:
        raise NetguardError("The notify URL has no host.", code="notify_url_invalid")
    return scheme, host, port if port is not None else (443 if scheme == "https" else 80)


def _normalize_host(host: str) -> str:
    host = host.rstrip(".").lower()
    if "%" in host:  # an IPv6 zone names an interface of ours
        raise NetguardError("The notify URL names a network interface.", code="notify_url_invalid")
    if host.isascii():
        return host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        raise NetguardError(
            "The notify URL's host is not a valid domain name.", code="notify_url_invalid"
        ) from None


def _allow_list(allow_hosts: Sequence[str]) -> tuple[set[str], set[Address]]:
    names: set[str] = set()
    ips: set[Address] = set()
    for entry in allow_hosts:
        value = entry.strip().strip("[]")
        ip = _ip(value)
        if ip is not None:
            ips.add(ip)
        elif value:
            names.add(value.rstrip(".").lower())
    return names, ips


def _ip(value: str) -> Address | None:
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None
