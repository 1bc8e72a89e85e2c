"""Issue 14 item 1 in Compose and Kubernetes: the domain events' broker is wired (EVENTS_BROKER_URL,
RabbitMQ in Compose, its credentials in the Secret in Kubernetes) and only the relay may reach it."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_compose_runs_rabbitmq_and_every_app_process_knows_the_broker():
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert "rabbitmq" in services["rabbitmq"]["image"]
    for name in ("web", "relay", "notices"):
        url = urlsplit(services[name]["environment"]["EVENTS_BROKER_URL"])
        assert (url.scheme, url.hostname, url.port) == ("amqp", "rabbitmq", 5672)
    assert services["relay"]["depends_on"]["rabbitmq"] == {"condition": "service_healthy"}
    assert services["rabbitmq"]["healthcheck"]["test"]


def test_the_secret_template_documents_the_broker_url():
    assert "EVENTS_BROKER_URL" in (ROOT / "k8s" / "secret.template.yaml").read_text()


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_only_the_relay_may_reach_the_broker(rendered, overlay):
    policies = {d["metadata"]["name"]: d["spec"] for d in rendered[overlay] if d["kind"] == "NetworkPolicy"}
    to_broker = [
        (name, spec)
        for name, spec in policies.items()
        for rule in spec.get("egress", [])
        if {"protocol": "TCP", "port": 5672} in rule.get("ports", [])
    ]
    assert len(to_broker) == 1, to_broker
    name, spec = to_broker[0]
    assert spec["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "relay"
    assert spec["egress"][0]["to"][0]["podSelector"]["matchLabels"] == {"lending.library/broker": "true"}
    otlp = policies["lending-otlp-egress"]["egress"][0]
    assert otlp["ports"] == [{"protocol": "TCP", "port": 4318}]
