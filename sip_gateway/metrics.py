"""The gateway's Prometheus metrics, served on SIP_METRICS_PORT (`/metrics`) beside the process's own:

- `sip_messages_total{message}`: messages answered, by request code (`11`, `09`, ...; `unreadable`
  for what could not be parsed, `oversize` for a message over the size cap);
- `sip_message_duration_seconds{message}`: from a message's arrival to its answer being ready;
- `sip_message_errors_total{message}`: messages answered `96` (not understood, bad checksum, not a
  SIP2 message, a failure of the gateway) or refused because the lending API could not be reached; a
  patron's refusal (`ok` = 0 for a blocked patron) is an answer, not an error;
- `sip_sessions_open`: kiosk connections open now;
- `sip_session_timeouts_total{reason}`: connections closed for not logging in (`login_timeout`) or
  for silence (`idle_timeout`).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MESSAGES = Counter("sip_messages_total", "SIP2 messages answered, by request code.", ["message"])
DURATION = Histogram(
    "sip_message_duration_seconds",
    "Time to answer a SIP2 message, by request code.",
    ["message"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
ERRORS = Counter("sip_message_errors_total", "SIP2 messages answered with an error, by request code.", ["message"])
OPEN_SESSIONS = Gauge("sip_sessions_open", "SIP2 kiosk connections open now.")
TIMEOUTS = Counter("sip_session_timeouts_total", "SIP2 connections closed by a timeout.", ["reason"])


def record_message(code: str, seconds: float, *, error: bool) -> None:
    MESSAGES.labels(message=code).inc()
    DURATION.labels(message=code).observe(seconds)
    if error:
        ERRORS.labels(message=code).inc()
