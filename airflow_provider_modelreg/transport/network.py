"""TLS and proxies: one process-wide SSL context per CA bundle, loopback detection, environment proxies and
``NO_PROXY``. TLS verification cannot be turned off."""

from __future__ import annotations

import functools
import ipaddress
import os
import ssl
from urllib.parse import urlsplit, urlunsplit
from urllib.request import getproxies_environment

import httpx


def is_loopback(host: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ::1 (the only hosts plain ``http://`` may reach)."""
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _file_signature(path: str | None) -> tuple[int, int, int] | None:
    """(mtime in ns, size, inode) of a file, or None when there is none to read: what changes when it is rotated
    (rewritten in place, replaced by a rename, or a Kubernetes secret's symlink swapped)."""
    if not path:
        return None
    try:
        stat = os.stat(path)
    except OSError:
        return None  # loading it reports the error
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)


@functools.lru_cache(maxsize=8)
def _ssl_context(
    ca_bundle: str | None,
    cert_file: str | None,
    cert_dir: str | None,
    signature: tuple[int, int, int] | None,  # part of the cache key only: a rotated file is read again
) -> ssl.SSLContext:
    if ca_bundle is not None:
        return ssl.create_default_context(cafile=ca_bundle)
    if cert_file:
        return ssl.create_default_context(cafile=cert_file)
    if cert_dir:
        return ssl.create_default_context(capath=cert_dir)
    return httpx.create_ssl_context(trust_env=False)  # certifi's bundle


def shared_ssl_context(ca_bundle: str | None = None) -> ssl.SSLContext:
    """One verifying SSL context per CA bundle *content* for the whole process.

    The cache is keyed by the file's path, modification time (ns), size and inode: a rotated private CA is read
    again by the next transport, without a restart. This reads and parses files (tens of ms for a large bundle):
    call it off an event loop (:meth:`RegistryTransport.prepare` in a thread).

    :param ca_bundle: a PEM file of trusted CAs; None: ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` when set, else certifi.
    """
    cert_file = os.environ.get("SSL_CERT_FILE") or None
    cert_dir = os.environ.get("SSL_CERT_DIR") or None
    watched = ca_bundle if ca_bundle is not None else cert_file
    return _ssl_context(ca_bundle, cert_file, cert_dir, _file_signature(watched))


def public_url(url: str) -> str:
    """``url`` without any ``user:password@`` part, for messages, logs and reprs."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _bypassed(host: str, port: int | None, no_proxy: str) -> bool:
    """``NO_PROXY`` rules as curl reads them: ``*``, host names and domain suffixes (leading dot optional),
    ``host:port``, IP addresses and CIDR ranges."""
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for raw in no_proxy.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        name, _, entry_port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
        if entry_port and entry_port.isdigit():
            if port is not None and int(entry_port) != port:
                continue
            entry = name
        entry = entry.strip("[]")
        if address is not None:
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                pass
            continue
        entry = entry.lstrip(".")
        if host == entry or host.endswith("." + entry):
            return True
    return False


def environment_proxy(base_url: str) -> str | None:
    """The proxy the environment asks for ``base_url`` (``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY``, either case,
    honouring ``NO_PROXY``), or None. Loopback hosts are never proxied by the environment (as Go's
    ``ProxyFromEnvironment``); set the ``proxy`` extra to proxy them."""
    parts = urlsplit(base_url)
    host = (parts.hostname or "").rstrip(".").lower()
    if is_loopback(host):
        return None
    proxies = getproxies_environment()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy:
        return None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if _bypassed(host, port, proxies.get("no", "")):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"
