"""The admin of the desk's records: the library's calendar (one row) and patron blocks. Both are
validated as the API validates them (`lending.calendar.validate`, the blocks' actions)."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.utils import timezone

from lending import calendar
from lending.blocks import ALL_ACTIONS, Action, PatronBlock
from lending.calendar import LibraryCalendar


class CalendarForm(forms.ModelForm):
    class Meta:
        model = LibraryCalendar
        fields = ["closed_weekdays", "closed_dates"]

    def clean(self):
        cleaned = super().clean() or {}
        try:
            weekdays, dates = calendar.validate(cleaned.get("closed_weekdays"), cleaned.get("closed_dates"))
        except calendar.InvalidCalendar as exc:
            raise forms.ValidationError({field: messages for field, messages in exc.details.items()}) from None
        cleaned["closed_weekdays"], cleaned["closed_dates"] = weekdays, dates
        return cleaned


@admin.register(LibraryCalendar)
class LibraryCalendarAdmin(admin.ModelAdmin):
    form = CalendarForm
    list_display = ["__str__", "closed_weekdays", "closed_dates", "updated_at"]

    def has_add_permission(self, request) -> bool:
        """One calendar: added once (the API's PUT creates it too), then changed."""
        return super().has_add_permission(request) and not LibraryCalendar.objects.exists()

    def save_model(self, request, obj, form, change) -> None:
        obj.pk = calendar.CALENDAR_ID
        super().save_model(request, obj, form, change)


class BlockForm(forms.ModelForm):
    blocks = forms.MultipleChoiceField(choices=Action.choices, widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = PatronBlock
        fields = ["user_email", "reason", "blocks", "expires_at"]

    def clean_user_email(self) -> str:
        return self.cleaned_data["user_email"].lower()

    def clean_blocks(self) -> list[str]:
        chosen = self.cleaned_data["blocks"]
        return [action.value for action in ALL_ACTIONS if action in chosen]


class InForceFilter(admin.SimpleListFilter):
    title = "in force"
    parameter_name = "in_force"

    def lookups(self, request, model_admin):
        return [("yes", "In force"), ("no", "Expired")]

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "yes":
            return queryset.in_force(now)
        if self.value() == "no":
            return queryset.exclude(pk__in=queryset.in_force(now).values("pk"))
        return queryset


@admin.register(PatronBlock)
class PatronBlockAdmin(admin.ModelAdmin):
    form = BlockForm
    list_display = ["id", "user_email", "blocks", "reason", "created_at", "expires_at", "created_by"]
    list_filter = [InForceFilter]
    search_fields = ["user_email"]
    readonly_fields = ["created_at", "created_by"]

    def save_model(self, request, obj, form, change) -> None:
        if not change:
            obj.created_at = timezone.now()
            obj.created_by = f"staff:{request.user.get_username()}"[:150]
        super().save_model(request, obj, form, change)
