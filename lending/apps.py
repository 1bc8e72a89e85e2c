from django.apps import AppConfig


class LendingConfig(AppConfig):
    name = "lending"
    verbose_name = "Lending"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.conf import settings

        from lending import logs, tracing

        logs.connect_request_signals()
        if settings.OTEL_EXPORTER_OTLP_ENDPOINT:
            tracing.setup()
