"""`python -m sip_gateway`: the SIP2 gateway for self-check kiosks, book drops and sorters.

A process of its own (a kiosk storm never takes a web worker): it speaks SIP2 on SIP_HOST:SIP_PORT
and calls the lending API at LENDING_API_URL with each kiosk account's API key. It reads the kiosk
accounts from the service's database (DATABASE_URL, like the web process), and serves `/metrics` and
`/health/live` on SIP_METRICS_PORT. Stops on SIGTERM or Ctrl-C.

    python -m sip_gateway [--host H] [--port P] [--api-url URL] [--metrics-port M]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys


def parse_args(argv: list[str] | None, settings) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sip_gateway", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=settings.SIP_HOST, help="address to listen on (SIP_HOST)")
    parser.add_argument("--port", type=int, default=settings.SIP_PORT, help="SIP2 port (SIP_PORT)")
    parser.add_argument("--api-url", default=settings.LENDING_API_URL, help="the lending API (LENDING_API_URL)")
    parser.add_argument(
        "--metrics-port", type=int, default=settings.SIP_METRICS_PORT, help="/metrics port (SIP_METRICS_PORT; 0: off)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.conf import settings

    from sip_gateway.service import run

    args = parse_args(argv, settings)
    return asyncio.run(_serve(run, args))


async def _serve(run, args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await run(host=args.host, port=args.port, api_url=args.api_url, metrics_port=args.metrics_port, stop=stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
