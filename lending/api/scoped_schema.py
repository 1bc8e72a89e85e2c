"""The OpenAPI document names the scope each operation needs (`lending.api.permissions`). Its own
module: DRF imports the permission classes while it loads, before drf-spectacular can be imported."""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema

from lending.api.permissions import ScopeRule


class ScopedAutoSchema(AutoSchema):
    """Each operation in the OpenAPI document says the scope it needs, in its description and in
    `x-required-scopes` (the scheme is an API key: OpenAPI 3.0 gives scopes to OAuth only)."""

    def get_operation(self, *args, **kwargs):
        operation = super().get_operation(*args, **kwargs)
        rule: ScopeRule | None = getattr(self.view, "required_scope", None)
        if operation is None or rule is None:
            return operation
        operation["x-required-scopes"] = rule.documented_scopes()
        scope_line = f"**Scope** (when API keys are required): {rule.describe()}."
        description = operation.get("description", "")
        operation["description"] = f"{description}\n\n{scope_line}" if description else scope_line
        return operation
