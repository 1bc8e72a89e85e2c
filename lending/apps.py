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
