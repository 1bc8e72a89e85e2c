"""Domain errors: each carries the HTTP status, a machine-readable code and a human message.

Services raise these; the API's exception handler turns every one into the single JSON error shape
`{"error": {"code": ..., "message": ...}}`.
"""

from typing import Any


class LendingError(Exception):
    status = 400
    code = "bad_request"

    def __init__(
        self, message: str, *, code: str | None = None, headers: dict[str, str] | None = None, details: Any = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.headers = headers or {}
        self.details = details


class NotFound(LendingError):
    status = 404
    code = "not_found"


class Forbidden(LendingError):
    status = 403
    code = "forbidden"


class Conflict(LendingError):
    status = 409
    code = "conflict"


class Unprocessable(LendingError):
    status = 422
    code = "unprocessable"


class PeerUnavailable(LendingError):
    """A peer is down, slow, broken or behind an open circuit breaker: the caller may retry later."""

    status = 503
    code = "peer_unavailable"

    def __init__(self, peer: str, reason: str, *, retry_after: int = 5, outcome_unknown: bool = False) -> None:
        super().__init__(
            f"The {peer} service is unavailable ({reason}); retry later.",
            headers={"Retry-After": str(max(1, retry_after))},
        )
        self.peer = peer
        self.reason = reason
        # The request reached the peer and we stopped waiting for its answer: it may still be applied.
        self.outcome_unknown = outcome_unknown
