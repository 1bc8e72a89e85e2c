"""The AsyncAPI 2.6 document of the domain events (`asyncapi.yaml`), generated from the code.

`make asyncapi` writes it (`python -m lending.events.asyncapi`). The event types come from
`lending.events.domain_events`; the `data` schemas are the API's own (drf-spectacular's
components for the loan and the hold, as in openapi.yaml), less the fields events withhold, with
OpenAPI's `nullable` written as JSON Schema. A test fails when the committed file is stale.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import yaml

ASYNCAPI_VERSION = "2.6.0"
DOCUMENT = Path(__file__).resolve().parents[2] / "asyncapi.yaml"
# The API's components the events' `data` use: (entity, component name).
DATA_COMPONENTS = {"loan": "LoanDetail", "hold": "Hold"}
# What the events say about the patron and the copy in place of the email (domain_events.EVENT_FIELDS).
PATRON_REF_SCHEMA = {
    "type": ["string", "null"],
    "pattern": "^p_[a-z2-7]{26}$",
    "description": (
        "The patron's pseudonym: the same for every loan and hold of one patron, different between two, "
        "not reversible without the service's key (HMAC-SHA256 of the lower-cased email, PATRON_REF_KEY). "
        "Never the email. Null once the loan or hold is anonymised: from its `anonymised` event on, and "
        "the service nulls it in the copies of the subject's earlier events it still stores. A consumer "
        "that keeps refs must forget the ref it holds for a subject when that subject's `anonymised` "
        "event arrives; the ref of the patron's loans that are not anonymised stays as it was."
    ),
}
ITEM_BARCODE_DESCRIPTION = "The copy's barcode; null for a title-level loan (or a hold no copy is trapped for)."


def _event_field_schemas() -> dict[str, dict[str, Any]]:
    from lending.models import ITEM_BARCODE_MAX_LENGTH

    item_barcode = {
        "type": ["string", "null"],
        "maxLength": ITEM_BARCODE_MAX_LENGTH,
        "description": ITEM_BARCODE_DESCRIPTION,
    }
    return {"item_barcode": item_barcode, "patron_ref": copy.deepcopy(PATRON_REF_SCHEMA)}


# `loan.fine_assessed.v1` only: the assessment, as the Fees service receives it (`lending.fines`).
FEE_SCHEMA = {
    "type": "object",
    "description": "Only on `loan.fine_assessed.v1`: the amount assessed, as the Fees service receives it "
    "(`POST /fees`, idempotent by `id`).",
    "required": ["id", "kind", "amount", "currency", "days_charged"],
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "kind": {"enum": ["overdue", "lost_item", "processing", "refund"]},
        "amount": {"type": "string", "pattern": "^\\d+\\.\\d{2}$"},
        "currency": {"type": "string"},
        "days_charged": {"type": "integer", "minimum": 0},
    },
}


def document() -> dict[str, Any]:
    from django.conf import settings

    from lending.events import domain_events

    api_schemas = _api_components()
    schemas = {"CloudEvent": _cloud_event_schema()}
    for entity, component in DATA_COMPONENTS.items():
        schemas[entity.capitalize()] = _data_schema(api_schemas[component], domain_events.data_fields(entity))
    schemas.update({name: _json_schema(api_schemas[name]) for name in ("LoanStatusEnum", "HoldStatusEnum", "Fine")})
    schemas["Loan"]["properties"]["fee"] = FEE_SCHEMA
    messages, channels = {}, {}
    for event_type in domain_events.all_types():
        name = _message_name(event_type)
        messages[name] = _message(event_type)
        channels[event_type] = _channel(event_type, name, settings.EVENTS_EXCHANGE)
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "Lending Management domain events",
            "version": "1.0.0",
            "description": (
                "Every change of a loan or a hold, as a CloudEvent 1.0 (structured JSON), published from the "
                f"transactional outbox to the durable topic exchange `{settings.EVENTS_EXCHANGE}` with the event "
                "type as routing key (persistent messages, publisher confirms). Delivery is at least once: drop "
                "duplicates by `id`, order a subject's events by `sequence`. `data` is the loan or hold as the "
                "API shows it, without the patron's email, with `item_barcode` (the copy; null for a title-level "
                "loan) and `patron_ref`, the patron's pseudonym. Anonymisation breaks the link: an anonymised "
                "loan's or hold's `anonymised` event, and anything published about it after, carries "
                "`patron_ref: null`; the service nulls the ref in the stored copies of its earlier events; "
                "a consumer forgets the ref it kept for that subject on its `anonymised` event. The ref is "
                "keyed with PATRON_REF_KEY: a new key gives every patron a new ref."
            ),
        },
        "servers": {
            "local": {"url": "127.0.0.1:5672", "protocol": "amqp", "protocolVersion": "0.9.1"},
        },
        "defaultContentType": "application/cloudevents+json",
        "channels": channels,
        "components": {"messages": messages, "schemas": schemas},
    }


def render() -> str:
    return yaml.safe_dump(document(), sort_keys=False, width=100, allow_unicode=True)


def _message_name(event_type: str) -> str:
    entity, verb = event_type.split(".")[3:5]
    return f"{entity}_{verb}"


def _channel(event_type: str, message: str, exchange: str) -> dict[str, Any]:
    return {
        "description": f"Routing key `{event_type}` on the topic exchange `{exchange}`.",
        "bindings": {
            "amqp": {
                "is": "routingKey",
                "exchange": {"name": exchange, "type": "topic", "durable": True, "autoDelete": False, "vhost": "/"},
                "bindingVersion": "0.2.0",
            }
        },
        "subscribe": {"operationId": f"on_{message}", "message": {"$ref": f"#/components/messages/{message}"}},
    }


# What a consumer does on a message, where it is more than recording it.
MESSAGE_DESCRIPTIONS = {
    "anonymised": (
        "The {entity} lost its patron (the retention job or an erasure): `patron_ref` is null here and on "
        "anything published about it after, and the service nulled it in the earlier events it stores. "
        "Forget the `patron_ref` you hold for this {entity}; the patron's other loans and holds keep theirs."
    ),
}


def _message(event_type: str) -> dict[str, Any]:
    entity, verb = event_type.split(".")[3:5]
    described = MESSAGE_DESCRIPTIONS.get(verb)
    return {
        "name": event_type,
        "title": event_type,
        **({"description": described.format(entity=entity)} if described else {}),
        "contentType": "application/cloudevents+json",
        "payload": {
            "allOf": [
                {"$ref": "#/components/schemas/CloudEvent"},
                {
                    "type": "object",
                    "properties": {
                        "type": {"const": event_type},
                        "data": {"$ref": f"#/components/schemas/{entity.capitalize()}"},
                    },
                },
            ]
        },
        "bindings": {"amqp": {"deliveryMode": 2, "messageType": event_type, "bindingVersion": "0.2.0"}},
    }


def _cloud_event_schema() -> dict[str, Any]:
    string = {"type": "string"}
    return {
        "type": "object",
        "required": ["specversion", "id", "source", "type", "subject", "time", "sequence", "data"],
        "properties": {
            "specversion": {"const": "1.0"},
            "id": {**string, "description": "`<loan|hold>-<subject>-<sequence>`: the same on every redelivery."},
            "source": {**string, "format": "uri-reference", "description": "EVENTS_SOURCE (default `/lending`)."},
            "type": {**string, "description": "`org.library.lending.<entity>.<verb>.v1`, also the routing key."},
            "subject": {**string, "description": "The loan's or the hold's id."},
            "time": {**string, "format": "date-time", "description": "When the change happened (UTC)."},
            "datacontenttype": {"const": "application/json"},
            "sequence": {
                "type": "integer",
                "minimum": 1,
                "description": "The subject's events numbered from 1, without gaps, in the order they happened.",
            },
            "traceparent": {**string, "description": "W3C trace context of the change (when tracing is on)."},
            "data": {"type": "object"},
        },
    }


def _data_schema(component: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    schema = _json_schema(component)
    schema["description"] = (
        f"As the API shows it ({', '.join(fields)}), without the patron's email; `patron_ref` stands for the patron."
    )
    shown, added = schema["properties"], _event_field_schemas()
    schema["properties"] = {name: shown.get(name) or added[name] for name in fields}
    schema["required"] = [name for name in schema.get("required", []) if name in fields]
    schema["required"] += [name for name in added if name in fields and name not in schema["required"]]
    return schema


def _json_schema(schema: Any) -> Any:
    """OpenAPI 3.0's schema as JSON Schema: `nullable` becomes a `null` alternative; readOnly dropped."""
    if isinstance(schema, list):
        return [_json_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    schema = {key: _json_schema(value) for key, value in copy.deepcopy(schema).items() if key != "readOnly"}
    if schema.pop("nullable", False):
        schema = {"oneOf": [{"type": "null"}, schema]} if "type" not in schema else _or_null(schema)
    return schema


def _or_null(schema: dict[str, Any]) -> dict[str, Any]:
    schema["type"] = [schema["type"], "null"]
    if "format" in schema or "enum" in schema:
        schema = {"oneOf": [{"type": "null"}, {**schema, "type": schema["type"][0]}]}
    return schema


def _api_components() -> dict[str, Any]:
    from drf_spectacular.generators import SchemaGenerator

    return SchemaGenerator().get_schema(request=None, public=True)["components"]["schemas"]


def main(argv: list[str]) -> int:
    import django

    django.setup()
    target = Path(argv[1]) if len(argv) > 1 else DOCUMENT
    target.write_text(render())
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    import os

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.exit(main(sys.argv))
