"""The demo kiosk of `make run` (`manage.py sip_accounts demo`, DJANGO_DEBUG only): its password is
public, printed in the banner and the README. Plain constants, importable without Django set up."""

DEMO_LOGIN = "kiosk"
DEMO_PASSWORD = "kiosk-demo-password"
DEMO_INSTITUTION = "demo"
DEMO_LOCATION = "demo-hall"
