"""Kiosk accounts in the admin (superusers, as API keys are): add one with its password (its API key
is created with it), change its institution, location or no-block permission, give it a new password
(and with it a new key). Neither the password nor the key is ever shown."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from sip_gateway import accounts
from sip_gateway.models import SipAccount


class AddAccountForm(forms.ModelForm):
    password1 = forms.CharField(label="Password (CO)", widget=forms.PasswordInput, strip=False)
    password2 = forms.CharField(label="Password again", widget=forms.PasswordInput, strip=False)

    class Meta:
        model = SipAccount
        fields = ["login", "institution", "location", "allow_no_block"]

    def clean(self):
        data = super().clean() or {}
        if data.get("password1") != data.get("password2"):
            raise forms.ValidationError("The passwords differ.")
        for name in ("login", "institution", "location"):
            try:
                accounts.check_text(name, data.get(name) or "")
            except accounts.AccountError as exc:
                self.add_error(name, str(exc))
        return data


class ChangeAccountForm(forms.ModelForm):
    new_password1 = forms.CharField(
        label="New password", widget=forms.PasswordInput, strip=False, required=False, help_text="Also a new API key."
    )
    new_password2 = forms.CharField(label="New password again", widget=forms.PasswordInput, strip=False, required=False)

    class Meta:
        model = SipAccount
        fields = ["institution", "location", "allow_no_block"]

    def clean(self):
        data = super().clean() or {}
        if data.get("new_password1") != data.get("new_password2"):
            raise forms.ValidationError("The passwords differ.")
        return data


@admin.register(SipAccount)
class SipAccountAdmin(admin.ModelAdmin):
    list_display = ["login", "institution", "location", "allow_no_block", "key_prefix", "updated_at", "updated_by"]
    search_fields = ["login", "institution", "location"]
    readonly_fields = ["key_prefix", "created_at", "created_by", "updated_at", "updated_by"]

    @admin.display(description="API key")
    def key_prefix(self, account: SipAccount) -> str:
        return account.api_key.prefix if account.api_key_id else "-"

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return request.user.is_superuser

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return request.user.is_superuser

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return request.user.is_superuser

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["form"] = ChangeAccountForm if obj is not None else AddAccountForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["login", "institution", "location", "allow_no_block", "password1", "password2"]
        return [*self.readonly_fields, "institution", "location", "allow_no_block", "new_password1", "new_password2"]

    def save_model(self, request, obj: SipAccount, form, change: bool) -> None:
        by = request.user.get_username()
        if not change:
            created = accounts.create_account(
                form.cleaned_data["login"],
                form.cleaned_data["password1"],
                institution=form.cleaned_data["institution"],
                location=form.cleaned_data.get("location") or "",
                allow_no_block=form.cleaned_data.get("allow_no_block", False),
                by=by,
            )
            obj.pk, obj.api_key = created.pk, created.api_key
            return
        obj.updated_by = by
        obj.save()
        if "allow_no_block" in form.changed_data:
            accounts.set_no_block(obj, obj.allow_no_block, by=by)
        if form.cleaned_data.get("new_password1"):
            accounts.set_password(obj, form.cleaned_data["new_password1"], by=by)

    def delete_model(self, request, obj: SipAccount) -> None:
        accounts.delete_account(obj)

    def delete_queryset(self, request, queryset) -> None:
        for account in queryset.select_related("api_key"):
            accounts.delete_account(account)
