"""The URL guard: which ``http(s)://`` URLs may be handed to MORI, which fetches them itself.

:func:`check_url` parses the URL twice: the WHATWG URL standard's way (browsers, and so the
way a fetcher that follows it connects: IDNA and NFKC mapping, ``\\`` read as ``/``,
percent-decoded hosts, every IPv4 spelling such as ``2130706433``, ``0x7f.1`` or ``127.1``) and
Python's plain ``urlsplit`` (what the URL sent to MORI is rebuilt from). A URL is refused when
its WHATWG host is internal, and when the two parsers disagree on the host or port at all, so
that no parser at MORI can read the URL that is sent as naming another host than the one that
was checked. The URL sent is parsed once more to be sure it still names that host.
"""

from __future__ import annotations

import ipaddress
import unicodedata
from collections.abc import Iterable
from typing import NamedTuple
from urllib.parse import SplitResult, urlsplit

import ada_url
import idna

from mori import keys
from mori.batch.codes import ErrorCode
from mori.batch.manifest.model import RowError

__all__ = ["INTERNAL_NAMES", "check_url", "is_internal_address", "is_internal_host"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Names (and every name under them) that never reach the public internet: loopback and
#: special-use names, and the private-use top-level names of RFC 6762 appendix G (none of
#: which is delegated in the DNS). A name without a dot is internal as well.
INTERNAL_NAMES = (
    "localhost",
    "localdomain",
    "local",
    "internal",
    "home.arpa",
    "intranet",
    "private",
    "corp",
    "home",
    "lan",
)

_IPV4_INTERNAL = tuple(
    ipaddress.IPv4Network(net)
    for net in (
        "0.0.0.0/8",  # "this network", the unspecified address
        "10.0.0.0/8",  # private
        "100.64.0.0/10",  # shared address space (carrier-grade NAT)
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local (cloud metadata services)
        "172.16.0.0/12",  # private
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation (TEST-NET-1)
        "192.88.99.0/24",  # 6to4 relay anycast
        "192.168.0.0/16",  # private
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation (TEST-NET-2)
        "203.0.113.0/24",  # documentation (TEST-NET-3)
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, and the limited broadcast address
    )
)
_IPV6_INTERNAL = tuple(
    ipaddress.IPv6Network(net)
    for net in (
        "::/128",  # unspecified
        "::1/128",  # loopback
        "100::/64",  # discard-only
        "2001::/23",  # IETF protocol assignments
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation
        "5f00::/16",  # segment routing (SRv6) SIDs
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (deprecated)
        "ff00::/8",  # multicast
    )
)
_IPV4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
_IPV4_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")
_TEREDO = ipaddress.IPv6Network("2001::/32")
_LOW_32 = 0xFFFFFFFF
#: Full stops other than "." (UTS 46 and IDNA 2003 split labels at them, urlsplit does not),
#: and the IDNA deviation characters (sharp s, final sigma, zero-width joiners), which IDNA
#: 2003 and UTS 46 transitional processing map to other letters than IDNA 2008 keeps.
_NOT_PLAIN_TEXT_IN_HOSTS = "\u3002\uff0e\uff61\u00df\u03c2\u200c\u200d"
_HTTP_SCHEMES = ("http", "https")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def check_url(url: str, allowed_private_hosts: frozenset[str] = frozenset()) -> str:
    """The URL to send to MORI for ``url`` (normalised, see :func:`mori.keys.normalise_url`).

    Raises :class:`RowError` with ``UNSUPPORTED_SCHEME``, ``URL_HAS_CREDENTIALS``,
    ``INVALID_URL`` or ``URL_PRIVATE_ADDRESS``. ``allowed_private_hosts`` holds ``host`` or
    ``host:port`` values that may be internal all the same (a local demo server).
    """
    text = url.strip()
    plain = _plain_parse(text)
    if plain.username is not None or plain.password is not None:
        raise RowError(
            ErrorCode.URL_HAS_CREDENTIALS, "URLs with user:password@ are not sent to MORI"
        )
    try:
        plain_host, plain_port = (plain.hostname or "").lower(), plain.port
    except ValueError as exc:
        raise RowError(ErrorCode.INVALID_URL, f"malformed URL: {exc}") from exc
    whatwg = _whatwg_parse(text)
    if whatwg.username or whatwg.password:
        raise RowError(
            ErrorCode.URL_HAS_CREDENTIALS, "URLs with user:password@ are not sent to MORI"
        )
    host = whatwg.hostname  # the plain parser's host must be this one too (checked below)
    allowed = _allowed((host, host.strip("[]"), plain_host), plain_port, allowed_private_hosts)
    if not allowed and is_internal_host(host):
        raise RowError(
            ErrorCode.URL_PRIVATE_ADDRESS,
            f"URL host {_shown(host)} is internal (loopback, private, link-local or a local "
            "name); MORI fetches URLs itself, so only public hosts are allowed",
        )
    if not plain_host:
        raise RowError(ErrorCode.INVALID_URL, "URL has no host")
    scheme = plain.scheme.lower()
    if not _same_host(plain_host, host) or not _same_port(scheme, plain_port, whatwg.port):
        raise RowError(
            ErrorCode.INVALID_URL,
            "URL host is ambiguous (parsers read it differently: backslashes, percent-escapes, "
            "full-width or compatibility characters, or an unusual IP address spelling)",
        )
    sent = keys.normalise_url(text)
    again = _whatwg_parse(sent)
    if again.hostname != host or not _same_port(scheme, plain_port, again.port):
        raise RowError(ErrorCode.INVALID_URL, "URL does not survive normalisation unchanged")
    return sent


def is_internal_host(host: str) -> bool:
    """``True`` for an internal host as the WHATWG parser gives it (ASCII, IPv6 in brackets)."""
    if host.startswith("["):
        try:
            return is_internal_address(ipaddress.IPv6Address(host[1:-1]))
        except ValueError:
            return True  # not an address: refuse rather than guess
    try:
        return is_internal_address(ipaddress.IPv4Address(host))
    except ValueError:
        pass
    name = host.rstrip(".").lower()
    if "." not in name:
        return True  # a single label is looked up in the local search domains
    return any(name == n or name.endswith("." + n) for n in INTERNAL_NAMES)


def is_internal_address(address: IPAddress) -> bool:
    """``True`` unless ``address`` is a public unicast address.

    An IPv6 address that embeds an IPv4 address (IPv4-mapped, -compatible or -translated,
    NAT64, 6to4, Teredo) is judged by the IPv4 address(es) it embeds.
    """
    if isinstance(address, ipaddress.IPv4Address):
        return (
            any(address in net for net in _IPV4_INTERNAL)
            or not address.is_global
            or address.is_multicast
        )
    embedded = _embedded_ipv4(address)
    if embedded:
        return any(is_internal_address(v4) for v4 in embedded)
    return (
        any(address in net for net in _IPV6_INTERNAL)
        or not address.is_global
        or address.is_multicast
        or address.is_reserved
        or address.is_site_local
    )


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries (none for an ordinary IPv6 address)."""
    value = int(address)
    if address in _TEREDO:
        assert address.teredo is not None
        return list(address.teredo)  # the server, and the client (bit-inverted low 32 bits)
    if address in _SIX_TO_FOUR:
        assert address.sixtofour is not None
        return [address.sixtofour]
    if address in _NAT64_LOCAL:  # an RFC 6052 /48 prefix, or a /96 prefix inside it
        around_u_octet = ((value >> 64) & 0xFFFF) << 16 | ((value >> 40) & 0xFFFF)
        return [ipaddress.IPv4Address(value & _LOW_32), ipaddress.IPv4Address(around_u_octet)]
    if any(address in net for net in (_IPV4_MAPPED, _IPV4_TRANSLATED, _NAT64, _IPV4_COMPATIBLE)):
        return [ipaddress.IPv4Address(value & _LOW_32)]
    return []


def _plain_parse(text: str) -> SplitResult:
    """``urlsplit``, its ``ValueError`` as ``INVALID_URL``; the scheme must be http(s)."""
    try:
        plain = urlsplit(text)
    except ValueError as exc:
        raise RowError(ErrorCode.INVALID_URL, f"malformed URL: {exc}") from exc
    if plain.scheme.lower() not in _HTTP_SCHEMES:
        raise RowError(
            ErrorCode.UNSUPPORTED_SCHEME,
            f"URL scheme '{plain.scheme}:' is not supported (use http:// or https://)",
        )
    return plain


class _Parsed(NamedTuple):
    """The parts of a WHATWG-parsed URL the guard looks at."""

    username: str
    password: str
    hostname: str  # ASCII, lower case; IPv4 canonical; IPv6 compressed, in brackets
    port: str  # "" for the scheme's default


def _whatwg_parse(text: str) -> _Parsed:
    """The URL as the WHATWG URL standard parses it; ``INVALID_URL`` when it does not."""
    try:
        parsed = ada_url.parse_url(text, attributes=("protocol", *_Parsed._fields))
    except ValueError as exc:
        raise RowError(ErrorCode.INVALID_URL, "malformed URL: not a valid http(s) URL") from exc
    if parsed["protocol"] not in ("http:", "https:"):
        raise RowError(ErrorCode.INVALID_URL, "malformed URL: not a valid http(s) URL")
    return _Parsed(parsed["username"], parsed["password"], parsed["hostname"], parsed["port"])


def _allowed(hosts: Iterable[str], port: int | None, allowed: frozenset[str]) -> bool:
    """``True`` when one spelling of the host, alone or with its port, is in ``allowed``."""
    if not allowed:
        return False
    return any(h in allowed or (port and f"{h}:{port}" in allowed) for h in hosts if h)


def _same_host(plain_host: str, whatwg_host: str) -> bool:
    """``True`` when both parsers name one host (IDNA-encoded, IPv6 compared by value)."""
    if whatwg_host.startswith("["):
        try:
            return ipaddress.IPv6Address(plain_host) == ipaddress.IPv6Address(whatwg_host[1:-1])
        except ValueError:
            return False
    if plain_host.isascii():
        return plain_host == whatwg_host
    if unicodedata.normalize("NFKC", plain_host) != plain_host:
        return False  # compatibility characters: parsers that do not map them read other text
    if any(ch in plain_host for ch in _NOT_PLAIN_TEXT_IN_HOSTS):
        return False  # dots only some parsers split at; letters IDNA versions map differently
    try:
        encoded = idna.encode(plain_host).decode("ascii")  # IDNA 2008, as httpx encodes
    except idna.IDNAError:
        return False
    return encoded == whatwg_host


def _same_port(scheme: str, plain_port: int | None, whatwg_port: str) -> bool:
    """``True`` when both parsers connect to one port."""
    default = _DEFAULT_PORTS.get(scheme)
    return (plain_port if plain_port is not None else default) == (
        int(whatwg_port) if whatwg_port else default
    )


def _shown(host: str) -> str:
    """The host for a message (a hostile one is cut short)."""
    return host if len(host) <= 80 else host[:77] + "..."
