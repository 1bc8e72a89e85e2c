"""Reference peers (Book, User, Notification, Fees) that honour the contracts the lending service relies
on. A development and test tool: they back `make run`, the integration tests and the benchmark."""

from tools.reference_peers.book import BookPeer
from tools.reference_peers.fees import FeesPeer
from tools.reference_peers.notification import NotificationPeer
from tools.reference_peers.user import UserPeer

__all__ = ["BookPeer", "FeesPeer", "NotificationPeer", "UserPeer"]
