"""`make e2e`, scenario (e): registry traffic through a real forward proxy (Debian's tinyproxy) to the emulator
served over HTTPS with a certificate from a private CA, as inside a corporate network.

The connection carries ``proxy`` and ``ca_bundle`` extras; a sync call (a worker's poke) and a deferrable wait
(the trigger, async) reach the emulator only through the proxy, whose log shows each CONNECT. Without the CA bundle
the same call fails at once with a typed error: TLS verification cannot be turned off.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import shutil
import time
from pathlib import Path
from typing import Any

from e2e.stack import Stack, apt_install, free_port, say, wait_for


def make_private_ca(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1/localhost signed by it: (ca.pem, server.pem, server.key)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "modelreg e2e private CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


def _accepts(port: int) -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def start_tinyproxy(stack: Stack, workdir: Path, env: dict[str, str]) -> tuple[str, Path]:
    if shutil.which("tinyproxy") is None:
        say("installing Debian's tinyproxy ...")
        apt_install(["tinyproxy"])
    port = free_port()
    log = stack.logs / "tinyproxy-access.log"
    log.touch()
    conf = workdir / "tinyproxy.conf"
    conf.write_text(
        "\n".join(
            [
                f"Port {port}",
                "Listen 127.0.0.1",
                "Timeout 60",
                f'LogFile "{log}"',
                "LogLevel Connect",
                "MaxClients 20",
                "Allow 127.0.0.1",
                "DisableViaHeader Yes",
                "",
            ]
        )
    )
    stack.start("tinyproxy", ["tinyproxy", "-d", "-c", str(conf)], env)
    wait_for(lambda: _accepts(port), 20, "tinyproxy to listen")
    return f"http://127.0.0.1:{port}", log


def run(stack: Stack, workdir: Path, env: dict[str, str], seed: dict[str, Any]) -> dict[str, Any]:
    import os

    from airflow_provider_modelreg.errors import ModelRegistryError
    from airflow_provider_modelreg.hooks.pai import PaiModelRegistryHook
    from airflow_provider_modelreg.triggers.pai import PaiModelVersionApprovedTrigger
    from modelreg_emulator import RegistryEmulator

    say("(e) Corporate network: HTTPS emulator with a private CA, reached only through tinyproxy")
    ca, cert, key = make_private_ca(workdir / "tls")
    proxy_url, proxy_log = start_tinyproxy(stack, workdir, env)
    emulator = RegistryEmulator(seed, tls_certfile=str(cert), tls_keyfile=str(key)).start()
    try:
        cred = seed["pai"]["credentials"][0]
        conn = {
            "conn_type": "pai",
            "login": cred["access_key_id"],
            "password": cred["access_key_secret"],
            "extra": {
                "endpoint": emulator.url,
                "region": "cn-hangzhou",
                "workspace_id": "ws-demo",
                "proxy": proxy_url,
                "ca_bundle": str(ca),
            },
        }
        os.environ["AIRFLOW_CONN_PAI_PROXIED"] = json.dumps(conn)
        hook = PaiModelRegistryHook("pai_proxied")
        found = hook.get_model_version("model-demo-fraud", "1.0.0")
        assert found.uri and found.uri.startswith("oss://"), found
        hook.close()

        async def deferred_wait() -> dict[str, Any]:
            trigger = PaiModelVersionApprovedTrigger(
                pai_conn_id="pai_proxied", model_id="model-demo-fraud", version_name="1.0.0", poke_interval=1
            )
            return (await anext(trigger.run())).payload  # type: ignore[no-any-return]

        event = asyncio.run(deferred_wait())
        assert event["status"] == "success" and event["version"]["uri"].startswith("oss://"), event
        host = emulator.url.split("://", 1)[1]
        wait_for(lambda: proxy_log.read_text().count(f"CONNECT {host}") >= 2, 10, "the proxy log to show both")
        connects = proxy_log.read_text().count(f"CONNECT {host}")
        requests_seen = emulator.request_log.count(authenticated=True)
        say(f"(e) sync call and deferrable wait went through the proxy: {connects} CONNECT {host} in its log")

        # TLS verification cannot be switched off: without the private CA the call fails at once, typed
        os.environ["AIRFLOW_CONN_PAI_PROXIED"] = json.dumps(
            {**conn, "extra": {k: v for k, v in conn["extra"].items() if k != "ca_bundle"}}
        )
        started = time.monotonic()
        try:
            PaiModelRegistryHook("pai_proxied").get_model_version("model-demo-fraud", "1.0.0")
        except ModelRegistryError as exc:
            refused = f"{type(exc).__name__}: {exc}"
        else:
            raise AssertionError("a certificate from an unknown CA was accepted")
        took = time.monotonic() - started
        assert "certificate" in refused.lower() and took < 10, (refused, took)
        say(f"(e) without the CA bundle: {refused[:140]} ({took:.1f} s, not retried)")
        return {"connects": connects, "authenticated_requests": requests_seen, "unknown_ca": refused[:200]}
    finally:
        emulator.stop()
        stack.stop("tinyproxy")
        os.environ.pop("AIRFLOW_CONN_PAI_PROXIED", None)
