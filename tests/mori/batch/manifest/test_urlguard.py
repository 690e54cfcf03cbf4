"""The URL guard: which URLs are sent to MORI, what is sent, and every way of naming a host."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from urllib.parse import urlsplit

import ada_url
import httpx
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mori import keys
from mori.batch.manifest import RowError, ValidationOptions, check_url
from mori.batch.manifest.urlguard import is_internal_address, is_internal_host

from .support import classified, load_rows, only

CODES = {"UNSUPPORTED_SCHEME", "URL_HAS_CREDENTIALS", "INVALID_URL", "URL_PRIVATE_ADDRESS"}


def verdict(url: str, allowed: frozenset[str] = frozenset()) -> str:
    """``"ok"`` when the guard accepts ``url``, else the error code."""
    try:
        check_url(url, allowed)
    except RowError as exc:
        return exc.code
    return "ok"


def whatwg_host(url: str) -> str | None:
    """The host a WHATWG parser (a browser) connects to for ``url``; ``None``: not a URL."""
    try:
        return ada_url.parse_url(url, attributes=("hostname",))["hostname"]
    except ValueError:
        return None


# -- the codes, as rows of a manifest ----------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://user:hunter2@example.com/a.jpg",
        "https://user@example.com/a.jpg",
        "http://:pw@example.com/a.jpg",
        "http://example.com\\@evil.example/a.jpg",  # user info to urlsplit
        "http:user:pw@example.com/a.jpg",  # user info to a WHATWG parser
    ],
)
def test_urls_with_credentials_are_refused_without_echoing_them(tmp_path: Path, url: str) -> None:
    item = only(load_rows(tmp_path, [{"source": url}]))
    assert item.error_code == "URL_HAS_CREDENTIALS"
    assert "hunter2" not in (item.error_message or "") + item.source
    assert "pw" not in (item.error_message or "") + item.source


PRIVATE_URLS = [
    "http://127.0.0.1/a.jpg",
    "http://127.0.0.1:8080/a.jpg",
    "http://10.1.2.3/a.jpg",
    "http://172.16.5.4/a.jpg",
    "http://192.168.0.5/a.jpg",
    "http://100.64.0.1/a.jpg",
    "http://169.254.169.254/latest/a.jpg",
    "http://0.0.0.0/a.jpg",
    "http://[::1]/a.jpg",
    "http://[::1]:9000/a.jpg",
    "http://[fe80::1]/a.jpg",
    "http://[fd00::1]/a.jpg",
    "http://[::ffff:127.0.0.1]/a.jpg",
    "http://2130706433/a.jpg",
    "http://0x7f000001/a.jpg",
    "http://localhost/a.jpg",
    "http://LocalHost:3000/a.jpg",
    "http://metadata.google.internal/a.jpg",
    "http://printer.local/a.jpg",
    "http://app.localhost/a.jpg",
    "http://224.0.0.1/a.jpg",
]


@pytest.mark.parametrize("url", PRIVATE_URLS)
def test_internal_addresses_are_refused(tmp_path: Path, url: str) -> None:
    assert only(load_rows(tmp_path, [{"source": url}])).error_code == "URL_PRIVATE_ADDRESS"


@pytest.mark.parametrize(
    "url", ["https://example.com/a.jpg", "http://8.8.8.8/a.jpg", "https://[2606:4700::1111]/a.jpg"]
)
def test_public_hosts_are_accepted(tmp_path: Path, url: str) -> None:
    assert only(load_rows(tmp_path, [{"source": url}])).ok


def test_allowed_private_hosts_let_exactly_that_host_through(tmp_path: Path) -> None:
    options = ValidationOptions(allowed_private_hosts=frozenset({"127.0.0.1:8123"}))
    rows = [
        {"source": "http://127.0.0.1:8123/a.jpg"},
        {"source": "http://127.0.0.1:9999/b.jpg"},
        {"source": "http://localhost:8123/c.jpg"},
        {"source": "http://127.0.0.1/d.jpg"},
    ]
    items = load_rows(tmp_path, rows, options)
    assert [it.error_code for it in items] == [None, *["URL_PRIVATE_ADDRESS"] * 3]
    assert items[0].kind == "url" and items[0].location == "http://127.0.0.1:8123/a.jpg"

    any_port = ValidationOptions(allowed_private_hosts=frozenset({"127.0.0.1"}))
    assert all(it.ok for it in load_rows(tmp_path, rows[:2], any_port))


@pytest.mark.parametrize(
    ("url", "allowed", "code"),
    [
        ("http://[::1]:8080/a.jpg", {"[::1]:8080"}, "ok"),
        ("http://[::1]:8080/a.jpg", {"::1:8080"}, "ok"),
        ("http://[::1]/a.jpg", {"::1"}, "ok"),
        ("http://printer.local/a.jpg", {"printer.local"}, "ok"),
        ("http://127.0.0.1:8123/a.jpg", {"127.0.0.1"}, "ok"),
        # allowed, but a spelling the parsers disagree on is never sent
        ("http://0x7f.1:8123/a.jpg", {"127.0.0.1:8123"}, "INVALID_URL"),
        ("http://127.0.0.1:8123\\@evil.example/a.jpg", {"127.0.0.1:8123"}, "URL_HAS_CREDENTIALS"),
        ("http://127.0.0.1\\.evil.example:8123/a.jpg", {"127.0.0.1:8123"}, "INVALID_URL"),
    ],
)
def test_allowed_private_hosts_spellings(url: str, allowed: set[str], code: str) -> None:
    assert verdict(url, frozenset(allowed)) == code


# -- every spelling of a host ------------------------------------------------------------------

INTERNAL_HOSTS = {
    "ideographic full stops": "127。0。0。1",
    "full-width digits": "１２７.０.０.１",
    "full-width name": "ｌｏｃａｌｈｏｓｔ",
    "half-width full stop": "127｡0｡0｡1",
    "backslash after the host": "127.0.0.1\\.example.com",
    "trailing dot": "127.0.0.1.",
    "two trailing dots": "localhost..",
    "percent-encoded address": "%31%32%37.0.0.1",
    "percent-encoded name": "%6c%6f%63%61%6c%68%6f%73%74",
    "decimal": "2130706433",
    "octal": "0177.0.0.1",
    "octal, one part": "017700000001",
    "hex": "0x7f.1",
    "hex, one part": "0X7F000001",
    "shorthand": "127.1",
    "shorthand private": "10.1",
    "mixed bases": "0x7f.0.0x0.01",
    "metadata, three parts": "169.254.43518",
    "IPv4-mapped": "[::ffff:127.0.0.1]",
    "IPv4-mapped, hex": "[::ffff:a9fe:a9fe]",
    "IPv4-compatible": "[::127.0.0.1]",
    "IPv4-compatible private": "[::10.0.0.1]",
    "IPv4-translated": "[::ffff:0:7f00:1]",
    "NAT64": "[64:ff9b::127.0.0.1]",
    "NAT64 metadata": "[64:ff9b::a9fe:a9fe]",
    "local NAT64, /96": "[64:ff9b:1::7f00:1]",
    "local NAT64, /48": "[64:ff9b:1:7f00:0:100::]",
    "6to4": "[2002:7f00:1::]",
    "6to4 metadata": "[2002:a9fe:a9fe::1]",
    "Teredo client 127.0.0.1": "[2001:0:4136:e378:8000:63bf:80ff:fffe]",
    "Teredo server 10.0.0.1": "[2001:0:a00:1:8000:63bf:f7f7:f7f7]",
    "CGNAT": "100.127.255.254",
    "this network": "0.1.2.3",
    "IETF assignments": "192.0.0.8",
    "TEST-NET-1": "192.0.2.1",
    "benchmarking": "198.18.0.1",
    "TEST-NET-2": "198.51.100.7",
    "TEST-NET-3": "203.0.113.9",
    "6to4 relay": "192.88.99.1",
    "multicast": "239.255.255.250",
    "reserved": "240.0.0.1",
    "broadcast": "255.255.255.255",
    "IPv6 unspecified": "[::]",
    "IPv6 unique local": "[fc00::1]",
    "IPv6 site-local": "[fec0::1]",
    "IPv6 multicast": "[ff02::1]",
    "IPv6 documentation": "[2001:db8::1]",
    "IPv6 documentation 3fff": "[3fff::1]",
    "IPv6 discard": "[100::1]",
    "localhost, upper case, dot": "LOCALHOST.",
    "under localhost": "a.b.localhost",
    "localdomain": "localhost.localdomain",
    "home.arpa": "home.arpa",
    "under home.arpa": "nas.home.arpa",
    "under internal": "x.internal",
    "under lan": "nas.lan",
    "corp": "intranet.corp",
    "single label": "intranet",
    "single label, dot": "nas.",
}


@pytest.mark.parametrize("host", list(INTERNAL_HOSTS.values()), ids=list(INTERNAL_HOSTS))
def test_internal_hosts_in_every_spelling_are_refused(host: str) -> None:
    assert verdict(f"http://{host}/a.jpg") == "URL_PRIVATE_ADDRESS"
    assert verdict(f"https://{host}:8443/a.jpg?x=1#y") == "URL_PRIVATE_ADDRESS"


@pytest.mark.parametrize(
    "url",
    [
        "http:\\\\127.0.0.1\\a.jpg",
        "http:/\\127.0.0.1/a.jpg",
        "http:127.0.0.1/a.jpg",
        "http:///127.0.0.1/a.jpg",
        "http://127.0.0.1\\@example.com/a.jpg",  # user info to urlsplit: refused either way
        "HTTP://127.0.0.1/a.jpg",
        "  http://localhost/a.jpg\t",
    ],
)
def test_what_a_browser_reads_as_an_internal_host_is_refused(url: str) -> None:
    assert verdict(url) in ("URL_PRIVATE_ADDRESS", "URL_HAS_CREDENTIALS")


PUBLIC_HOSTS = {
    "name": "cdn.example.com",
    "trailing dot": "example.com.",
    "IDN": "exämple.com",
    "IDN, punycode": "xn--exmple-cua.com",
    "localhost as a label": "localhost.example.com",
    "local as a label": "local.example.com",
    "underscore": "a_b.example.net",
    "IPv4": "8.8.8.8",
    "IPv6": "[2606:4700::1111]",
    "IPv6, long form": "[2606:4700:0:0:0:0:0:1111]",
    "IPv4-mapped public": "[::ffff:8.8.8.8]",
    "NAT64 public": "[64:ff9b::8.8.8.8]",
    "6to4 public": "[2002:808:808::1]",
    "Teredo public": "[2001:0:4136:e378:8000:63bf:f7f7:f7f7]",
}


@pytest.mark.parametrize("host", list(PUBLIC_HOSTS.values()), ids=list(PUBLIC_HOSTS))
def test_public_hosts_in_every_form_are_accepted(host: str) -> None:
    url = f"https://{host}/a.jpg"
    assert check_url(url) == keys.normalise_url(url)


AMBIGUOUS = {
    "percent-encoded": "http://ex%61mple.com/a.jpg",
    "full-width letters": "http://ＥＸＡＭＰＬＥ.com/a.jpg",
    "ideographic full stop": "http://example。com/a.jpg",
    "compatibility ligature": "http://ﬁle.example.com/a.jpg",
    "IDNA deviation (sharp s)": "http://faß.de/a.jpg",
    "IDNA deviation (final sigma)": "http://ς.example.com/a.jpg",
    "decimal public address": "http://134744072/a.jpg",
    "shorthand public address": "http://8.8.2056/a.jpg",
    "octal public address": "http://010.8.8.8/a.jpg",
    "backslash to a public host": "http://example.com\\.evil.example/a.jpg",
    "no slashes": "https:example.com/a.jpg",
    "backslashes only": "https:\\\\example.com\\a.jpg",
    "three slashes": "https:///example.com/a.jpg",
    "numeric last label": "http://example.123/a.jpg",
    "space in host": "http://ex ample.com/a.jpg",
    "zone id": "http://[fe80::1%25eth0]/a.jpg",
    "port out of range": "http://example.com:65536/a.jpg",
    "port not a number": "http://example.com:8o/a.jpg",
    "bad brackets": "http://[::1/a.jpg",
}


@pytest.mark.parametrize("url", list(AMBIGUOUS.values()), ids=list(AMBIGUOUS))
def test_urls_parsers_disagree_on_are_refused(url: str) -> None:
    assert verdict(url) == "INVALID_URL"
    item = classified(url)
    assert (item.error_code, item.location) == ("INVALID_URL", None)


@pytest.mark.parametrize("url", ["ftp://example.com/a.jpg", "gs://b/a.jpg", "file:///a.jpg"])
def test_check_url_takes_http_and_https_only(url: str) -> None:
    assert verdict(url) == "UNSUPPORTED_SCHEME"


# -- properties --------------------------------------------------------------------------------


def spell_ipv4(value: int, parts: int, bases: list[str], upper: bool) -> str:
    """``value`` as a WHATWG IPv4 host of ``parts`` numbers, each in its base (d, o, x)."""
    octets = value.to_bytes(4, "big")
    numbers = [*octets[: parts - 1], int.from_bytes(octets[parts - 1 :], "big")]
    spelled = []
    for number, base in zip(numbers, bases, strict=False):
        text = {"d": str(number), "o": "0" + format(number, "o"), "x": "0x" + format(number, "x")}
        spelled.append(text[base].upper() if upper else text[base])
    return ".".join(spelled)


ipv4_values = st.one_of(
    st.integers(0, 2**32 - 1),
    st.sampled_from([0x7F000001, 0x0A000001, 0xA9FEA9FE, 0xC0A80001, 0x64400001, 0x08080808]),
)
spellings = st.tuples(
    st.integers(1, 4), st.lists(st.sampled_from("dox"), min_size=4, max_size=4), st.booleans()
)


@settings(max_examples=400, deadline=None)
@given(value=ipv4_values, spelling=spellings)
def test_every_ipv4_spelling_gets_the_verdict_of_its_address(
    value: int, spelling: tuple[int, list[str], bool]
) -> None:
    host = spell_ipv4(value, *spelling)
    canonical = str(ipaddress.IPv4Address(value))
    internal = is_internal_address(ipaddress.IPv4Address(value))
    assert whatwg_host(f"http://{host}/") == canonical
    expected = "URL_PRIVATE_ADDRESS" if internal else "ok" if host == canonical else "INVALID_URL"
    assert verdict(f"http://{host}/a.jpg") == expected


def embeddings(v4: ipaddress.IPv4Address) -> dict[str, ipaddress.IPv6Address]:
    """``v4`` inside every IPv6 form that carries an IPv4 address."""
    n = int(v4)
    teredo_server = int(ipaddress.IPv4Address("65.54.227.120"))
    return {
        "mapped": ipaddress.IPv6Address(0xFFFF << 32 | n),
        "compatible": ipaddress.IPv6Address(n),
        "translated": ipaddress.IPv6Address(0xFFFF << 48 | n),
        "nat64": ipaddress.IPv6Address(0x64FF9B << 96 | n),
        "6to4": ipaddress.IPv6Address(0x2002 << 112 | n << 80 | 1),
        "teredo": ipaddress.IPv6Address(0x20010000 << 96 | teredo_server << 64 | n ^ 0xFFFFFFFF),
    }


@settings(max_examples=300, deadline=None)
@given(value=ipv4_values)
def test_ipv6_forms_are_judged_by_the_ipv4_address_they_embed(value: int) -> None:
    v4 = ipaddress.IPv4Address(value)
    internal = is_internal_address(v4)
    for form, v6 in embeddings(v4).items():
        assert is_internal_address(v6) == internal, (form, v6)
        assert verdict(f"http://[{v6}]/a.jpg") == ("URL_PRIVATE_ADDRESS" if internal else "ok")
    local_nat64 = ipaddress.IPv6Address(0x64FF9B0001 << 80 | value)
    assert is_internal_address(local_nat64) or not internal


ODD_LABELS = st.text(
    alphabet=st.sampled_from("abcXYZ019-_äßς\u200dａＡ１。．｡%\\@:[]"), min_size=1, max_size=8
)
LABELS = st.text(alphabet=st.sampled_from("abcxyzABC0189-_äé"), min_size=1, max_size=8)
HOSTS = st.one_of(
    st.lists(LABELS, min_size=2, max_size=4).map(".".join),
    st.lists(st.one_of(LABELS, ODD_LABELS), min_size=1, max_size=4).map(".".join),
    st.tuples(
        st.lists(LABELS, max_size=2), st.sampled_from(["localhost", "local", "com", "lan"])
    ).map(lambda t: ".".join([*t[0], t[1]])),
    st.tuples(ipv4_values, spellings).map(lambda t: spell_ipv4(t[0], *t[1])),
    ipv4_values.map(lambda n: f"[{embeddings(ipaddress.IPv4Address(n))['mapped']}]"),
    st.sampled_from(["[::1]", "[2606:4700::1111]", "[64:ff9b::808:808]", "[::]", "127.0.0.1"]),
)
URLS = st.builds(
    "".join,
    st.tuples(
        st.sampled_from(["http", "https", "HTTP", "hTTps"]),
        st.sampled_from(["://"] * 6 + [":/\\", ":\\\\", ":", ":///"]),
        st.sampled_from([""] * 6 + ["u:p@", "u@", "a\\@", "%40@"]),
        HOSTS,
        st.sampled_from(["", "", "", ":80", ":443", ":8080", ":0", ":", ":99999", ":0x50"]),
        st.sampled_from(["/a.jpg", "", "/", "\\a.jpg", "/@evil.example/a", "#@evil.example/"]),
        st.sampled_from(["", "?token=s3cr3t", "?a=1#frag", "?x=\\@y"]),
    ),
)


def httpx_host(url: str) -> str | None:
    """The host httpx connects to for ``url`` (IDNA-encoded); ``None`` when httpx refuses it."""
    try:
        return httpx.URL(url).raw_host.decode("ascii")
    except Exception:
        return None


def same_host(guard_host: str, other: str) -> bool:
    """``True`` when ``other`` (httpx's spelling) names ``guard_host`` (WHATWG's spelling)."""
    if guard_host.startswith("["):
        try:
            return ipaddress.IPv6Address(other) == ipaddress.IPv6Address(guard_host[1:-1])
        except ValueError:
            return False
    return other == guard_host


@settings(max_examples=1500, deadline=None)
@given(URLS)
@example("http://127.0.0.1\\.example.com/a.jpg")
@example("http://[::ffff:7f00:1]/a.jpg")
@example("http://0x7f.1:80/a.jpg")
def test_no_parser_reads_a_sent_url_as_another_or_internal_host(url: str) -> None:
    try:
        sent = check_url(url)
    except RowError as exc:
        assert exc.code in {"URL_HAS_CREDENTIALS", "INVALID_URL", "URL_PRIVATE_ADDRESS"}
        sent = None
    host = whatwg_host(url)
    if host is not None and is_internal_host(host):
        assert sent is None, "a WHATWG parser reads the URL as an internal host"
    seen_by_httpx = httpx_host(url)
    if seen_by_httpx:  # httpx resolves its host with the C library, which reads 0x7f.1 too
        as_address = whatwg_host(f"http://{seen_by_httpx}/")
        if as_address is None and ":" in seen_by_httpx:
            as_address = f"[{seen_by_httpx}]"
        if as_address is not None and is_internal_host(as_address):
            assert sent is None, "httpx reads the URL as an internal host"
    if sent is None:
        return
    assert host is not None and not is_internal_host(host)
    assert whatwg_host(sent) == host  # the URL sent names the host that was checked...
    assert same_host(host, httpx_host(sent) or "")  # ...to httpx...
    if seen_by_httpx is not None:
        assert same_host(host, seen_by_httpx)  # ...as the URL given did...
    plain = urlsplit(sent)
    assert plain.username is None and plain.password is None
    assert check_url(sent) == keys.normalise_url(sent)  # ...and to the guard itself
    assert keys.url_fingerprint(url) == "url:" + sent


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_check_url_raises_only_row_errors(tail: str) -> None:
    for url in (tail, "http://" + tail, "https:" + tail, f"http://a.com/{tail}"):
        try:
            sent = check_url(url)
        except RowError as exc:
            assert exc.code in CODES
        else:
            assert check_url(sent) == keys.normalise_url(sent)  # accepted again
