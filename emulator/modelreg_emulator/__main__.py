"""``python -m modelreg_emulator`` / ``modelreg-emulator``: run the emulator in the foreground.

Prints exactly one line, ``modelreg-emulator listening on http://HOST:PORT``, once the port accepts connections;
stops on SIGINT/SIGTERM. A bad seed is reported on stderr with the JSON path of the bad value (exit status 2).

``modelreg-emulator approve|reject|set-status|requests ... --url URL`` controls a running emulator instead
(:mod:`.admin`: change a PAI version's status on demand, print the request log).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modelreg-emulator",
        description="Local emulator of the Alibaba Cloud PAI and Huawei Cloud DataArts Fabric model registries.",
        epilog="Control a running emulator: modelreg-emulator {approve,reject,set-status,requests} --help",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free port (default 0)")
    parser.add_argument("--seed", default=None, help="JSON seed file (default: the built-in demo seed)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="non-blocking delay per request")
    parser.add_argument("--error-rate", type=float, default=0.0, help="share of requests answered 5xx")
    parser.add_argument("--throttle-rate", type=float, default=0.0, help="share of requests answered 429")
    parser.add_argument("--reset-rate", type=float, default=0.0, help="share of connections dropped mid-response")
    parser.add_argument("--random-seed", type=int, default=0, help="seed of the deterministic fault decisions")
    parser.add_argument("--retry-after-ms", type=int, default=1000, help="wait asked for by throttle answers")
    parser.add_argument("--token-lifetime", type=float, default=86400, help="IAM token lifetime in seconds")
    parser.add_argument(
        "--credential-lifetime",
        type=float,
        default=3600,
        help="lifetime in seconds of temporary keys from STS, instance metadata and IAM security tokens",
    )
    parser.add_argument(
        "--version-delay",
        type=float,
        default=0.5,
        help="seconds a Fabric version takes to be created and listed (default 0.5)",
    )
    return parser


async def _serve(server: object, sock: object, url: str) -> None:
    import uvicorn

    assert isinstance(server, uvicorn.Server)
    task = asyncio.ensure_future(server.serve(sockets=[sock]))  # type: ignore[list-item]
    while not server.started:
        if task.done():
            await task
            return
        await asyncio.sleep(0.005)
    print(f"modelreg-emulator listening on {url}", flush=True)
    await task


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    from modelreg_emulator.admin import COMMANDS

    if argv and argv[0] in COMMANDS:
        from modelreg_emulator.admin import main as admin_main

        return admin_main(argv)
    args = build_parser().parse_args(argv)
    from modelreg_emulator import require_server

    try:
        require_server()  # fastapi/uvicorn: dependencies of modelreg-emulator
    except ModuleNotFoundError as exc:
        print(f"modelreg-emulator: {exc}", file=sys.stderr)
        return 2
    from modelreg_emulator.app import EmulatorConfig, Registry
    from modelreg_emulator.faults import FaultConfig
    from modelreg_emulator.server import bind_socket, make_server, url_of
    from modelreg_emulator.store import SeedError

    try:
        faults = FaultConfig(
            latency_ms=args.latency_ms,
            error_rate=args.error_rate,
            throttle_rate=args.throttle_rate,
            reset_rate=args.reset_rate,
            random_seed=args.random_seed,
            retry_after_ms=args.retry_after_ms,
        )
        config = EmulatorConfig(
            seed=args.seed,
            host=args.host,
            port=args.port,
            token_lifetime=args.token_lifetime,
            credential_lifetime=args.credential_lifetime,
            version_delay=args.version_delay,
            faults=faults,
        )
        registry = Registry(config)
    except SeedError as exc:
        print(f"modelreg-emulator: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"modelreg-emulator: {exc}", file=sys.stderr)
        return 2
    try:
        sock = bind_socket(args.host, args.port)
    except OSError as exc:
        print(f"modelreg-emulator: cannot bind {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    server = make_server(registry)
    # uvicorn re-raises the signal that stopped it once it has shut down gracefully; a no-op SIGTERM handler makes
    # that a clean exit (status 0). SIGINT ends as KeyboardInterrupt, caught below.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    registry.store.mark_started()
    try:
        asyncio.run(_serve(server, sock, url_of(sock, args.host)))
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
