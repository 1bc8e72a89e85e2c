"""The admin's view of the history (each loan's and hold's events, read-only, inline) and of API
keys' scopes (checkboxes on the key's page). `lending.admin` attaches the event inlines; importing
this module registers the API key admin."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey

from lending.api.permissions import check_binding
from lending.models import ApiKeyScopes, Event, Scope


class EventInline(admin.TabularInline):
    """A subject's events in order. Nobody adds, edits or deletes them: they are the audit trail.
    Whoever may view the loan (or hold) sees its history."""

    model = Event
    fields = readonly_fields = (
        "sequence",
        "kind",
        "occurred_at",
        "caller",
        "caller_key_prefix",
        "request_id",
        "reason",
        "data",
    )
    ordering = ("sequence",)
    extra = 0
    can_delete = False
    verbose_name_plural = "history"
    parent_model_name = ""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.has_perm(f"lending.view_{self.parent_model_name}")


class LoanEventInline(EventInline):
    fk_name = "loan"
    parent_model_name = "loan"


class HoldEventInline(EventInline):
    fk_name = "hold"
    parent_model_name = "hold"


class ScopesForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=Scope.choices,
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="What the key may call; a key without a scope may call only GET /policy/.",
    )

    class Meta:
        model = ApiKeyScopes
        fields = ["scopes", "patron_email"]
        help_texts = {"patron_email": "With `patron-self`: the one patron the key acts for."}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["scopes"] = self.instance.scope_list

    def clean_scopes(self) -> str:
        chosen = set(self.cleaned_data["scopes"])
        return " ".join(scope for scope in Scope.values if scope in chosen)

    def clean(self):
        cleaned = super().clean() or {}
        scopes, patron = cleaned.get("scopes", "").split(), cleaned.get("patron_email") or ""
        if Scope.PATRON_SELF in scopes and not patron:
            raise forms.ValidationError({"patron_email": "A `patron-self` key needs the patron it acts for."})
        try:
            cleaned["patron_email"] = check_binding(scopes, patron)
        except ValueError as exc:
            raise forms.ValidationError({"patron_email": str(exc)}) from None
        return cleaned


class ScopesInline(admin.StackedInline):
    model = ApiKeyScopes
    form = ScopesForm
    can_delete = False
    min_num = max_num = 1
    verbose_name = verbose_name_plural = "scopes"


admin.site.unregister(APIKey)


@admin.register(APIKey)
class ScopedAPIKeyAdmin(APIKeyModelAdmin):
    """The library's key admin (the key shown once, on creation) with the key's scopes."""

    inlines = [ScopesInline]
    # The base class's tuple is typed by its length; one more column is still a list_display.
    list_display = (*APIKeyModelAdmin.list_display, "scopes")  # type: ignore[assignment]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("grant")

    @admin.display(description="scopes")
    def scopes(self, api_key: APIKey) -> str:
        grant = getattr(api_key, "grant", None)
        return ", ".join(grant.scope_list) if grant and grant.scopes else "(none)"
