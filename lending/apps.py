"""The lending app: wires its logging signals and tracing at startup, and loads the models kept beside their rules."""

from django.apps import AppConfig


class LendingConfig(AppConfig):
    name = "lending"
    verbose_name = "Lending"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        import sys

        from django.conf import settings

        from lending.observability import logs, tracing

        logs.connect_request_signals()
        if not settings.DEBUG:
            _stop_resetting_query_logs()
        if settings.OTEL_EXPORTER_OTLP_ENDPOINT:
            tracing.setup(service=tracing.service_name(tracing.role_of(sys.argv)))

    def import_models(self) -> None:
        super().import_models()
        # Models kept beside the rules that use them: the library's calendar, patron blocks, the
        # circulation rules and their loan policies, the fines assessed.
        import lending.blocks  # noqa: F401
        import lending.calendar  # noqa: F401
        import lending.circulation_rules  # noqa: F401
        import lending.fines  # noqa: F401


def _stop_resetting_query_logs() -> None:
    """Django empties every connection's query log at the start of each request, for the log DEBUG keeps;
    without DEBUG nothing is logged (only a test's `CaptureQueriesContext` logs, and empties its own), so the
    receiver only walks the connections for nothing: under load, about 3 % of a web worker's CPU (the
    profile in tools/bench/REPORT.md, run 7)."""
    from django.core.signals import request_started
    from django.db import reset_queries

    request_started.disconnect(reset_queries)
