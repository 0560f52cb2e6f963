"""The client's address, read one way everywhere: login lockouts (django-axes), sign-up, submission and API throttles.

Behind TRUSTED_PROXY_COUNT reverse proxies, each appending the address it received from to X-Forwarded-For, the
client is the entry that many places from the right; anything further left was written by the client and is
ignored. With no proxy configured the header is ignored altogether and the connection's address is the client.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest

#: An IPv6 client usually holds a whole /64: throttles count the network, not the single address.
IPV6_THROTTLE_PREFIX = 64


def client_address(request: HttpRequest) -> str:
    remote = request.META.get("REMOTE_ADDR", "") or ""
    hops = settings.TRUSTED_PROXY_COUNT
    if hops:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        forwarded = [part for part in forwarded if part]
        if len(forwarded) >= hops:
            candidate = forwarded[-hops]
            try:
                return str(ipaddress.ip_address(candidate))
            except ValueError:
                pass  # a proxy we trust wrote something odd: fall back to the connection
    return remote


def throttle_key(request: HttpRequest) -> str:
    """The client address as throttles count it: an IPv4 address, or the /64 network of an IPv6 one."""
    raw = client_address(request)
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        return raw or "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/{IPV6_THROTTLE_PREFIX}", strict=False))
    return str(address)
