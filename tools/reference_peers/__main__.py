"""`python -m tools.reference_peers`: Book on 8001, User on 8002, Notification on 8003, Fees on 8004 until
Ctrl-C."""

import argparse
import json
import os
import signal
import threading

from tools.reference_peers import BookPeer, FeesPeer, NotificationPeer, UserPeer


def announce(peer) -> None:
    """One line per peer; a JSON object under LOG_FORMAT=json, like every line of `make run`."""
    if os.environ.get("LOG_FORMAT", "").strip().lower() == "json":
        print(json.dumps({"event": "reference_peer_started", "peer": peer.name, "url": peer.url}), flush=True)
    else:
        print(f"reference {peer.name} peer on {peer.url}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--book-port", type=int, default=8001)
    parser.add_argument("--user-port", type=int, default=8002)
    parser.add_argument("--notification-port", type=int, default=8003)
    parser.add_argument("--fees-port", type=int, default=8004)
    parser.add_argument("--demo-books", type=int, default=0, help="extra 1-copy books to create")
    parser.add_argument("--demo-users", type=int, default=0, help="extra active patrons patronN@example.com")
    args = parser.parse_args()
    peers = [
        BookPeer(args.host, args.book_port, demo_books=args.demo_books).start(),
        UserPeer(args.host, args.user_port, demo_users=args.demo_users).start(),
        NotificationPeer(args.host, args.notification_port).start(),
        FeesPeer(args.host, args.fees_port).start(),
    ]
    for peer in peers:
        announce(peer)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    for peer in peers:
        peer.stop()


if __name__ == "__main__":
    main()
