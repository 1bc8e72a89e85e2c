"""CPU per peer GET, side by side: the service's client (lending.clients.http: libcurl, breaker,
metrics, strict JSON) against the same GET through a `requests` session configured as the client was
before (pooled adapter, no environment lookup, streamed and bounded read, strict JSON).

`python -m tools.bench.peer_calls <calls>` with the service's environment (DJANGO_SETTINGS_MODULE and the
peers' URLs); prints JSON: CPU milliseconds per GET of this process, one thread, alternating blocks.
"""

from __future__ import annotations

import json
import sys
import time

import django


def main(calls: int) -> dict:
    django.setup()
    import requests
    from django.conf import settings
    from requests.adapters import HTTPAdapter

    from lending.clients import books
    from lending.strict_json import loads_strict

    session = requests.Session()
    session.trust_env = False
    session.mount("http://", HTTPAdapter(pool_connections=4, pool_maxsize=64, max_retries=0))
    url = f"{settings.BOOK_MANAGEMENT_URL.rstrip('/')}/getBooks/1"
    timeout = (settings.PEER_CONNECT_TIMEOUT, settings.PEER_READ_TIMEOUT)

    def through_requests() -> None:
        with session.get(url, headers={"Accept": "application/json"}, timeout=timeout, stream=True) as answer:
            loads_strict(b"".join(answer.iter_content(64 * 1024)))

    def through_client() -> None:
        books.client().get("/getBooks/1")

    ways = {"requests": through_requests, "service client (libcurl)": through_client}
    spent = dict.fromkeys(ways, 0.0)
    for way in ways.values():  # warm both pools
        way()
    block = 100
    for _ in range(max(1, calls // block)):
        for name, way in ways.items():
            started = time.process_time()
            for _ in range(block):
                way()
            spent[name] += time.process_time() - started
    done = max(1, calls // block) * block
    return {name: round(1000 * seconds / done, 3) for name, seconds in spent.items()} | {"calls_each": done}


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)))
