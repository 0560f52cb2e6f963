"""Which network addresses a submitted endpoint may make this service contact (server-side request forgery).

Pure standard library, no Django: the web form calls it to refuse a URL with a message, and the endpoint
backend's transport calls it again at connect time, for the address it actually connects to, so a host name
that resolves to a public address when submitted and to 127.0.0.1 later (DNS rebinding) gets nowhere.

An address is allowed only when it is a global unicast address. Everything else (loopback, private,
link-local, carrier-grade NAT, multicast, reserved, unspecified, documentation ranges, cloud metadata) is
refused unless the deployment allows private endpoints. IPv4 written in the legacy forms that resolvers still
accept (``2130706433``, ``0x7f000001``, ``0177.0.0.1``, ``127.1``) and IPv4 embedded in IPv6 (mapped
``::ffff:127.0.0.1``, compatible, 6to4, NAT64, Teredo) are judged by the IPv4 address they stand for.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[..., list]

#: Instance-metadata services of the big clouds: a request there can leak the machine's credentials.
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, Oracle
    "169.254.170.2",  # AWS ECS task metadata
    "169.254.169.123",  # AWS time sync
    "100.100.100.200",  # Alibaba Cloud
    "fd00:ec2::254",  # AWS over IPv6
))
ALLOWED_SCHEMES = ("http", "https")
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_PRIVATE_NETS = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"))
_NUMERIC_PART = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$", re.IGNORECASE)


class UnsafeAddressError(ValueError):
    """The endpoint would make the service contact an address it must not; the message says which and why."""


@dataclass(frozen=True)
class CheckedEndpoint:
    """A URL that passed: its host, port and the addresses it resolved to (all allowed)."""

    host: str
    port: int
    addresses: tuple[IPAddress, ...]


def parse_networks(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    """Operator-allowed networks (CIDR strings) for deployments whose model servers live on a private net."""
    networks = []
    for raw in values:
        try:
            networks.append(ipaddress.ip_network(raw.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{raw!r} is not a network such as 10.1.2.0/24 or fd12::/64") from None
    return tuple(networks)


def _ipv4_part(text: str) -> int:
    if text.lower().startswith("0x"):
        return int(text[2:] or "0", 16)
    if len(text) > 1 and text.startswith("0"):
        if not set(text) <= set("01234567"):
            raise ValueError(text)
        return int(text, 8)
    return int(text, 10)


def legacy_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """IPv4 in any form inet_aton (and so getaddrinfo) accepts: 1-4 decimal, octal or hex parts.

    Returns None for a host that is not all-numeric (a name); raises UnsafeAddressError for a numeric host
    that is not a valid address, since resolvers disagree on what such a thing means.
    """
    parts = host.split(".")
    if len(parts) > 1 and parts[-1] == "":
        parts = parts[:-1]  # one trailing dot, as in a fully qualified name
    if not parts or not all(_NUMERIC_PART.match(p) for p in parts):
        return None
    try:
        numbers = [_ipv4_part(p) for p in parts]
    except ValueError:
        raise UnsafeAddressError(f"{host} looks like an IP address but is not a valid one.") from None
    if len(numbers) > 4 or any(n > 255 for n in numbers[:-1]) or numbers[-1] >= 256 ** (5 - len(numbers)):
        raise UnsafeAddressError(f"{host} looks like an IP address but is not a valid one.")
    value = numbers[-1]
    for i, n in enumerate(numbers[:-1]):
        value += n << (8 * (3 - i))
    return ipaddress.IPv4Address(value)


def ip_literal(host: str) -> IPAddress | None:
    """The address a host written as an IP literal stands for (IPv6 with or without brackets), else None."""
    text = host.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if ":" in text:
        try:
            return ipaddress.IPv6Address(text.split("%", 1)[0])
        except ValueError:
            raise UnsafeAddressError(f"{host} is not a valid IPv6 address.") from None
    return legacy_ipv4(text)


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, translated, compatible, 6to4, NAT64, Teredo)."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    value = int(ip)
    if value >> 32 == 0xFFFF0000:  # ::ffff:0:a.b.c.d (IPv4-translated)
        return ipaddress.IPv4Address(value & 0xFFFFFFFF)
    if value >> 32 == 0 and value > 1:  # ::a.b.c.d (deprecated IPv4-compatible)
        return ipaddress.IPv4Address(value & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    if any(ip in net for net in _NAT64):
        return ipaddress.IPv4Address(value & 0xFFFFFFFF)
    if ip.teredo is not None:
        return ip.teredo[1]
    return None


def why_refused(ip: IPAddress) -> str | None:
    """A plain description of why ``ip`` is not a public address, or None when it is one."""
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if isinstance(ip, ipaddress.IPv6Address):
        inner = embedded_ipv4(ip)
        if inner is not None:
            reason = why_refused(inner)
            return f"an IPv6 form of {inner}, {reason}" if reason else None
    for test, words in (
        ("is_unspecified", "the unspecified address"),
        ("is_loopback", "a loopback address (this machine)"),
        ("is_link_local", "a link-local address"),
        ("is_multicast", "a multicast address"),
    ):
        if getattr(ip, test):
            return words
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return "a carrier-grade NAT (shared) address"
    if any(ip.version == net.version and ip in net for net in _PRIVATE_NETS):
        return "a private network address"
    if ip.is_private or ip.is_reserved or not ip.is_global:
        return "a reserved, non-public address"
    return None


def check_address(ip: IPAddress, *, allow_private: bool, allowed_networks: Sequence[IPNetwork] = ()) -> None:
    if allow_private:
        return
    reason = why_refused(ip)
    if reason is None:
        return
    if ip not in METADATA_ADDRESSES and any(ip.version == net.version and ip in net for net in allowed_networks):
        return
    raise UnsafeAddressError(reason)


def resolve(host: str, port: int, resolver: Resolver | None = None) -> list[IPAddress]:
    """Every address the host name resolves to, in the resolver's order; raises OSError when it does not."""
    infos = (resolver or socket.getaddrinfo)(host, port, type=socket.SOCK_STREAM)
    seen: list[IPAddress] = []
    for info in infos:
        raw = info[4][0]
        ip = ipaddress.ip_address(raw.split("%", 1)[0])
        if ip not in seen:
            seen.append(ip)
    if not seen:
        raise OSError(f"{host} resolved to no address")
    return seen


def _refusal(host: str, ip: IPAddress, reason: str, literal: bool) -> UnsafeAddressError:
    where = f"{host} is {reason}" if literal else f"{host} resolves to {ip}, {reason}"
    return UnsafeAddressError(
        f"{where}. This leaderboard only contacts public internet addresses; give the endpoint's public URL."
    )


def check_host(host: str, port: int, *, allow_private: bool, allowed_networks: Sequence[IPNetwork] = (),
               resolver: Resolver | None = None) -> tuple[IPAddress, ...]:
    """The addresses to connect to for ``host``; raises UnsafeAddressError if any of them is not allowed.

    Every resolved address must pass, not just the first: a name that answers with both a public and a
    private address would otherwise reach the private one whenever the client falls back to it.
    """
    literal = ip_literal(host)
    if literal is not None:
        addresses = [literal]
    else:
        try:
            addresses = resolve(host, port, resolver)
        except (OSError, UnicodeError) as exc:
            raise UnsafeAddressError(
                f"The host name {host} could not be resolved ({exc}). Check its spelling; it must be a public "
                "name the evaluation workers can reach."
            ) from None
    for ip in addresses:
        try:
            check_address(ip, allow_private=allow_private, allowed_networks=allowed_networks)
        except UnsafeAddressError as exc:
            raise _refusal(host, ip, str(exc), literal is not None) from None
    return tuple(addresses)


def check_url(url: str, *, allow_private: bool, allowed_networks: Sequence[IPNetwork] = (),
              resolver: Resolver | None = None) -> CheckedEndpoint:
    """Scheme, shape and every address of ``url``; raises UnsafeAddressError (or ValueError) with the reason.

    With ``allow_private`` nothing is resolved: every address is allowed, and an unresolvable name is
    the pre-flight probe's business.
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise ValueError(f"Use an http:// or https:// URL (not {scheme + '://' if scheme else 'a bare host'}).")
    if not parts.hostname:
        raise ValueError("The URL has no host name.")
    if parts.username is not None or parts.password is not None:
        raise ValueError("Remove the user name and password from the URL; give the API key in its own field.")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise ValueError("The URL's port is not a number between 0 and 65535.") from None
    host = parts.hostname
    if allow_private:
        literal = ip_literal(host)
        return CheckedEndpoint(host, port, (literal,) if literal else ())
    addresses = check_host(host, port, allow_private=False, allowed_networks=allowed_networks, resolver=resolver)
    return CheckedEndpoint(host, port, addresses)
