"""The current request's correlation id, readable from any layer (logs, peer calls, the relay)."""

import contextvars

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


def current_request_id() -> str:
    return request_id_var.get()
