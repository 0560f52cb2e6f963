"""The service never contacts loopback, private, link-local, multicast or metadata addresses for a submitter.

Checked twice: when the URL is submitted (pure checks, with the resolver) and when a worker connects (the
guarded transport resolves again and connects to the address it checked), with redirects never followed.
Real servers on 127.0.0.1/127.0.0.2 stand in for "private" targets; the only mock is the resolver, in the
tests that need a public name (real DNS is unreachable here).
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from evalworkers.backends import EndpointBackend, EndpointConfig, GenerationRequest, probe
from evalworkers.backends.addresses import (
    UnsafeAddressError,
    check_url,
    legacy_ipv4,
    parse_networks,
    why_refused,
)
from evalworkers.backends.guarded import GuardedTransport, UnsafeEndpointError
from tests.fake_openai import FakeOpenAI

pytestmark = pytest.mark.slow  # real HTTP servers and redirects

# The list, then more spellings of the same places.
SSRF_URLS = [
    ("http://127.0.0.1", "loopback"),
    ("http://localhost", "loopback"),
    ("http://[::1]", "loopback"),
    ("http://169.254.169.254/latest/meta-data", "metadata"),
    ("http://10.0.0.1", "private"),
    ("http://0x7f000001", "loopback"),
    ("http://2130706433", "loopback"),
    ("http://[::ffff:127.0.0.1]", "loopback"),
    ("http://0177.0.0.1/v1", "loopback"),
    ("http://127.1:8000/v1", "loopback"),
    ("http://127.0.0.1./v1", "loopback"),
    ("http://LOCALHOST:8000/v1", "loopback"),
    ("http://0.0.0.0:8000", "unspecified"),
    ("http://[::]:8000", "unspecified"),
    ("http://192.168.1.20/v1", "private"),
    ("http://172.16.5.4/v1", "private"),
    ("http://100.64.0.1/v1", "carrier-grade"),
    ("http://100.100.100.200/latest/meta-data", "metadata"),
    ("http://[fd00:ec2::254]/latest/meta-data", "metadata"),
    ("http://[fe80::1]/v1", "link-local"),
    ("http://224.0.0.1/v1", "multicast"),
    ("http://[ff02::1]/v1", "multicast"),
    ("http://[fc00::5]/v1", "private"),
    ("http://[::ffff:7f00:1]/v1", "loopback"),
    ("http://[::ffff:10.0.0.1]/v1", "private"),
    ("http://[::ffff:169.254.169.254]/", "metadata"),
    ("http://[::127.0.0.1]/v1", "loopback"),
    ("http://[2002:7f00:1::]/v1", "loopback"),
    ("http://[64:ff9b::a00:1]/v1", "private"),
    ("https://192.0.2.1/v1", "reserved"),
    ("https://240.0.0.1/v1", "reserved"),
]
PUBLIC_URLS = ["https://93.184.216.34/v1", "http://8.8.8.8:8000/v1", "https://[2606:4700:4700::1111]/v1"]


@pytest.mark.parametrize(("url", "words"), SSRF_URLS)
def test_a_private_or_special_address_is_refused_with_the_reason(url: str, words: str) -> None:
    with pytest.raises(UnsafeAddressError) as info:
        check_url(url, allow_private=False)
    message = str(info.value)
    assert words in message, message
    assert "public" in message  # and says what to do instead


@pytest.mark.parametrize("url", PUBLIC_URLS)
def test_a_public_address_passes(url: str) -> None:
    checked = check_url(url, allow_private=False)
    assert all(why_refused(ip) is None for ip in checked.addresses)


@pytest.mark.parametrize("url", ["ftp://example.org/v1", "file:///etc/passwd", "gopher://127.0.0.1:6379/_x",
                                 "javascript:alert(1)", "example.org/v1", "//example.org/v1", "dict://x:11211/"])
def test_only_http_and_https_urls_are_accepted(url: str) -> None:
    with pytest.raises(ValueError, match="http:// or https://"):
        check_url(url, allow_private=True)


def test_credentials_in_the_url_are_refused() -> None:
    with pytest.raises(ValueError, match="API key in its own field"):
        check_url("https://user:secret@93.184.216.34/v1", allow_private=True)


def test_a_deployment_that_allows_private_endpoints_accepts_them_without_resolving() -> None:
    def no_dns(*args: object, **kwargs: object) -> list:
        raise AssertionError("must not resolve")

    assert check_url("http://127.0.0.1:8000/v1", allow_private=True, resolver=no_dns).port == 8000
    assert check_url("http://model.internal:8000/v1", allow_private=True, resolver=no_dns).addresses == ()


@pytest.mark.parametrize(("host", "address"), [
    ("2130706433", "127.0.0.1"), ("0x7f000001", "127.0.0.1"), ("0177.0.0.1", "127.0.0.1"), ("127.1", "127.0.0.1"),
    ("0x7f.1", "127.0.0.1"), ("10.1", "10.0.0.1"), ("192.168.257", "192.168.1.1"), ("1.2.3.4", "1.2.3.4"),
])
def test_legacy_ipv4_spellings_mean_what_the_resolver_makes_of_them(host: str, address: str) -> None:
    assert legacy_ipv4(host) == ipaddress.IPv4Address(address)
    resolved = socket.getaddrinfo(host, 80, type=socket.SOCK_STREAM)[0][4][0]  # glibc's inet_aton, no DNS
    assert resolved == address


@pytest.mark.parametrize("host", ["4294967296", "256.1.1.1", "1.2.3.4.5", "0x1ffffffff", "09.1.1.1"])
def test_a_numeric_host_that_is_no_valid_address_is_refused(host: str) -> None:
    with pytest.raises(UnsafeAddressError, match="not a valid"):
        check_url(f"http://{host}/v1", allow_private=False)


def fake_resolver(answers: dict[str, list[str]]):
    """A stand-in for DNS: the names given answer with these addresses, in order."""
    def resolve(host: str, port: int, *args: object, **kwargs: object) -> list:
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        out = []
        for a in answers[host]:
            family = socket.AF_INET6 if ":" in a else socket.AF_INET
            sockaddr = (a, port, 0, 0) if family == socket.AF_INET6 else (a, port)
            out.append((family, socket.SOCK_STREAM, 6, "", sockaddr))
        return out
    return resolve


def test_a_name_that_resolves_to_a_private_address_is_refused_naming_the_address() -> None:
    resolver = fake_resolver({"models.example.org": ["10.20.30.40"]})
    with pytest.raises(UnsafeAddressError, match=r"models\.example\.org resolves to 10\.20\.30\.40, a private"):
        check_url("https://models.example.org/v1", allow_private=False, resolver=resolver)


def test_a_name_with_one_public_and_one_private_address_is_refused() -> None:
    resolver = fake_resolver({"mixed.example.org": ["93.184.216.34", "::1"]})
    with pytest.raises(UnsafeAddressError, match="::1, a loopback"):
        check_url("https://mixed.example.org/v1", allow_private=False, resolver=resolver)


def test_a_name_that_does_not_resolve_is_refused_with_a_hint() -> None:
    with pytest.raises(UnsafeAddressError, match=r"could not be resolved.*spelling"):
        check_url("https://nowhere.example.org/v1", allow_private=False, resolver=fake_resolver({}))


def test_operator_allowed_networks_pass_but_never_the_metadata_address() -> None:
    allowed = parse_networks(["10.1.0.0/16", "169.254.0.0/16"])
    assert check_url("http://10.1.2.3:8000/v1", allow_private=False, allowed_networks=allowed)
    with pytest.raises(UnsafeAddressError):
        check_url("http://10.2.0.1:8000/v1", allow_private=False, allowed_networks=allowed)
    with pytest.raises(UnsafeAddressError, match="metadata"):
        check_url("http://169.254.169.254/", allow_private=False, allowed_networks=allowed)
    with pytest.raises(ValueError, match="not a network"):
        parse_networks(["10.1.0.0/33"])


# --- at connect time: the guarded transport in the endpoint backend and the probe -------------------

@pytest.fixture
def server():
    with FakeOpenAI(models=("m",), max_model_len=8192) as fake:
        yield fake


def guarded_config(url: str, **extra: object) -> EndpointConfig:
    return EndpointConfig(base_url=url, model="m", allow_private=False, max_retries=0, request_timeout_s=5,
                          deadline_s=5, **extra)


def test_the_backend_refuses_to_connect_to_a_loopback_endpoint_and_sends_nothing(server) -> None:
    with EndpointBackend(guarded_config(server.base_url)) as backend:
        result = backend.generate(GenerationRequest(prompt="hi", max_new_tokens=4))
    assert not result.ok and "loopback" in result.error and result.attempts == 1  # not retried
    assert server.count() == 0


def test_the_probe_fails_a_private_endpoint_with_a_message_and_no_request(server) -> None:
    result = probe(guarded_config(server.base_url), required_context=1024)
    assert result.code == "blocked" and not result.retryable
    assert "127.0.0.1 is a loopback address" in result.message and "was not contacted" in result.message
    assert server.count() == 0


def test_the_same_endpoint_works_when_the_deployment_allows_private_endpoints(server) -> None:
    result = probe(EndpointConfig(base_url=server.base_url, model="m"), required_context=1024)
    assert result.ok, result.message


@pytest.fixture
def second_loopback_server():
    """FakeOpenAI on 127.0.0.2, which the tests allow as an 'operator-trusted network' (127.0.0.2/32)."""
    with FakeOpenAI(models=("m",), max_model_len=8192, host="127.0.0.2") as fake:
        yield fake


def test_dns_rebinding_is_caught_when_the_worker_connects(monkeypatch, second_loopback_server) -> None:
    """The name answers with an allowed address when submitted, then with 127.0.0.1 when the worker connects."""
    answers = iter([["127.0.0.2"], ["127.0.0.1"]])
    real = socket.getaddrinfo

    def rebinding(host, port, *args, **kwargs):
        if host == "rebind.example.org":
            return fake_resolver({host: next(answers)})(host, port)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    url = f"http://rebind.example.org:{second_loopback_server.port}/v1"
    trusted = ("127.0.0.2/32",)
    assert check_url(url, allow_private=False, allowed_networks=parse_networks(trusted))  # submit time: fine
    with EndpointBackend(guarded_config(url, allowed_networks=trusted)) as backend:
        result = backend.generate(GenerationRequest(prompt="hi", max_new_tokens=4))
    assert not result.ok and "resolves to 127.0.0.1, a loopback address" in result.error
    assert second_loopback_server.count() == 0


def test_the_transport_connects_to_the_address_it_checked_keeping_the_host_name(
        monkeypatch, second_loopback_server) -> None:
    real = socket.getaddrinfo
    calls: list[str] = []

    def resolver(host, port, *args, **kwargs):
        calls.append(host)
        if host == "models.example.org":
            return fake_resolver({host: ["127.0.0.2"]})(host, port)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    url = f"http://models.example.org:{second_loopback_server.port}/v1"
    with EndpointBackend(guarded_config(url, allowed_networks=("127.0.0.2/32",))) as backend:
        result = backend.generate(GenerationRequest(prompt="hi", max_new_tokens=4))
    assert result.ok, result.error
    # The name was resolved once, by the check; the connection went to that answer (a literal needs no DNS).
    assert calls == ["models.example.org", "127.0.0.2"]
    assert second_loopback_server.requests[-1].headers["host"] == f"models.example.org:{second_loopback_server.port}"


class _Redirector(BaseHTTPRequestHandler):
    target = ""
    hits = 0

    def do_GET(self) -> None:
        type(self).hits += 1
        self.send_response(302)
        self.send_header("Location", self.target + self.path)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_GET

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def redirector(server):
    """An allowed host (127.0.0.2, trusted by the test's operator setting) that redirects to 127.0.0.1."""
    handler = type("Redirect", (_Redirector,), {"target": server.url, "hits": 0})
    httpd = ThreadingHTTPServer(("127.0.0.2", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield handler, f"http://127.0.0.2:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_an_endpoint_that_redirects_to_a_private_address_is_refused_and_the_target_never_contacted(
        redirector, server) -> None:
    handler, url = redirector
    config = guarded_config(url + "/v1", allowed_networks=("127.0.0.2/32",))
    result = probe(config, required_context=1024)
    assert result.code == "blocked", result.message
    assert "redirect to http://127.0.0.1" in result.message and "loopback" in result.message
    assert handler.hits == 1 and server.count() == 0


def test_a_client_that_follows_redirects_is_checked_again_at_every_hop(redirector, server) -> None:
    handler, url = redirector
    transport = GuardedTransport(httpx.HTTPTransport(), allowed_networks=parse_networks(["127.0.0.2/32"]))
    with httpx.Client(transport=transport, follow_redirects=True) as client, \
            pytest.raises(UnsafeEndpointError, match=r"127\.0\.0\.1 is a loopback"):
        client.get(url + "/v1/models")
    assert handler.hits == 1 and server.count() == 0


@pytest.mark.django_db
def test_a_worker_refuses_a_stored_private_endpoint_once_the_deployment_disallows_them(settings, server) -> None:
    """A submission accepted earlier (or written by hand) still cannot make the worker reach a private address."""
    from evalworkers import runner
    from leaderboard.models import SubmissionStatus
    from tests.factories import make_entry, make_submission

    sub = make_submission(model=make_entry(endpoint_url=server.base_url, api_model_name="m"))
    settings.ALLOW_PRIVATE_ENDPOINTS = False
    assert runner.start(sub.pk).cell_ids == []
    sub.refresh_from_db()
    assert sub.status == SubmissionStatus.FAILED
    assert "127.0.0.1 is a loopback address" in sub.failure_reason and sub.probe_result["code"] == "blocked"
    assert server.count() == 0
