"""An httpx transport that checks, at connect time, the address every request actually goes to.

The host is resolved here, each address is checked (``addresses.check_host``), and the request is sent to
the checked address itself, with the original Host header and TLS server name, so nothing resolves the
name a second time between the check and the connection (DNS rebinding). Every hop of a redirect goes
through ``handle_request`` again, so a client that follows redirects is checked at each one.
"""

from __future__ import annotations

from collections.abc import Sequence

import httpx

from evalworkers.backends.addresses import IPNetwork, Resolver, UnsafeAddressError, check_host, ip_literal


class UnsafeEndpointError(httpx.ConnectError):
    """Refused before connecting: the address is not one this service may contact. Not worth retrying."""


class GuardedTransport(httpx.BaseTransport):
    def __init__(self, inner: httpx.BaseTransport, *, allow_private: bool = False,
                 allowed_networks: Sequence[IPNetwork] = (), resolver: Resolver | None = None) -> None:
        self.inner = inner
        self.allow_private = allow_private
        self.allowed_networks = tuple(allowed_networks)
        self.resolver = resolver

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.allow_private:
            return self.inner.handle_request(request)
        url = request.url
        host = url.host
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            addresses = check_host(host, port, allow_private=False, allowed_networks=self.allowed_networks,
                                   resolver=self.resolver)
        except UnsafeAddressError as exc:
            raise UnsafeEndpointError(str(exc), request=request) from None
        if ip_literal(host) is None:
            # Connect to the address just checked; keep the name for the Host header (already set) and for TLS.
            request.url = url.copy_with(host=str(addresses[0]))
            if url.scheme == "https":
                request.extensions = {**request.extensions, "sni_hostname": host}
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()
