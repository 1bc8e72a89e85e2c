from django.apps import AppConfig


class SipGatewayConfig(AppConfig):
    name = "sip_gateway"
    verbose_name = "SIP2 kiosks"
    default_auto_field = "django.db.models.BigAutoField"
