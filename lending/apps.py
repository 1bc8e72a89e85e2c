from django.apps import AppConfig


class LendingConfig(AppConfig):
    name = "lending"
    verbose_name = "Lending"
    default_auto_field = "django.db.models.BigAutoField"
