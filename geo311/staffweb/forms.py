"""The staff pages' forms: queue filters (the staff API's queue parameters, as a page form),
bulk actions, and the field view's status update with a photo."""

from typing import Any

from django import forms
from django.contrib.auth.models import User
from django.utils.translation import gettext_lazy as _

from boundaries.models import Boundary
from geo311 import selectors
from geo311.models import Department, ServiceCategory, StaffProfile, Status, Team

YES_NO = [("", _("Any")), ("yes", _("Yes")), ("no", _("No"))]
Choices = list[tuple[str, Any]]


def _set_choices(field: forms.Field, choices: Choices) -> None:
    assert isinstance(field, forms.ChoiceField)
    field.choices = choices


class QueueFilterForm(forms.Form):
    """Filters of the department queue; ``selector_kwargs`` are ``selectors.staff_queue``'s."""

    status = forms.MultipleChoiceField(label=_("Status"), required=False)
    service_code = forms.ChoiceField(label=_("Category"), required=False)
    boundary = forms.CharField(
        label=_("Boundary"),
        required=False,
        max_length=120,
        help_text=_("layer:code of an active boundary, e.g. wards:42"),
    )
    min_age_days = forms.FloatField(label=_("Older than (days)"), required=False, min_value=0)
    max_age_days = forms.FloatField(label=_("Newer than (days)"), required=False, min_value=0)
    overdue = forms.ChoiceField(label=_("Overdue"), required=False, choices=YES_NO)
    unassigned = forms.BooleanField(label=_("Unassigned only"), required=False)
    closed = forms.BooleanField(label=_("Include closed"), required=False)
    page = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _set_choices(
            self.fields["status"],
            [(s.code, s.name) for s in Status.objects.order_by("order", "pk")],
        )
        self.fields["status"].widget.attrs["size"] = 4
        categories = ServiceCategory.objects.filter(active=True).order_by("name")
        _set_choices(
            self.fields["service_code"],
            [("", _("Any"))] + [(c.service_code, c.name) for c in categories],
        )

    def clean_boundary(self) -> Boundary | None:
        value = self.cleaned_data["boundary"].strip()
        if not value:
            return None
        layer, _sep, code = value.partition(":")
        try:
            return selectors.boundary_active_get(layer=layer, code=code)
        except Boundary.DoesNotExist:
            raise forms.ValidationError(
                _("No active boundary '%(code)s' in layer '%(layer)s' (give layer:code)"),
                params={"code": code, "layer": layer},
            ) from None

    def selector_kwargs(self) -> dict[str, Any]:
        data = self.cleaned_data
        overdue = {"yes": True, "no": False}.get(data.get("overdue") or "")
        return {
            "statuses": data.get("status") or [],
            "service_codes": [data["service_code"]] if data.get("service_code") else [],
            "boundary": data.get("boundary"),
            "min_age_days": data.get("min_age_days"),
            "max_age_days": data.get("max_age_days"),
            "open_only": not data.get("closed"),
            "overdue": overdue,
        }


def _team_choices(departments: list[Department]) -> Choices:
    return [("", _("(keep)"))] + [
        (t.slug, f"{t.name} ({t.department.name})" if len(departments) > 1 else t.name)
        for t in Team.objects.filter(department__in=departments)
        .select_related("department")
        .order_by("department__name", "name")
    ]


def _crew_choices(departments: list[Department]) -> Choices:
    users = (
        User.objects.filter(
            is_active=True,
            pk__in=StaffProfile.objects.filter(department__in=departments).values("user_id"),
        )
        .order_by("username")
        .values_list("username", flat=True)
    )
    return [("", _("(keep)"))] + [(name, name) for name in users]


class BulkActionForm(forms.Form):
    """One action on the selected requests: assign them (team and/or crew member) or change
    their status, with notes. Each request still passes its own permission and the city's
    transition rules."""

    ASSIGN = "assign"
    TRANSITION = "transition"

    action = forms.ChoiceField(
        label=_("Action"),
        choices=[(ASSIGN, _("Assign")), (TRANSITION, _("Change status"))],
    )
    selected = forms.MultipleChoiceField(label=_("Requests"), widget=forms.MultipleHiddenInput)
    team = forms.ChoiceField(label=_("Team"), required=False)
    assignee = forms.ChoiceField(label=_("Crew member"), required=False)
    status = forms.ChoiceField(label=_("New status"), required=False)
    public_note = forms.CharField(
        label=_("Public note (residents see it)"),
        required=False,
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    internal_note = forms.CharField(
        label=_("Internal note"),
        required=False,
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    def __init__(self, *args: Any, departments: list[Department], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _set_choices(self.fields["team"], _team_choices(departments))
        _set_choices(self.fields["assignee"], _crew_choices(departments))
        statuses = Status.objects.filter(is_duplicate=False).order_by("order", "pk")
        _set_choices(self.fields["status"], [("", "—")] + [(s.code, s.name) for s in statuses])
        # The selected rows are checkboxes of the list, posted under this name.
        picked = self.data.getlist("selected") if hasattr(self.data, "getlist") else []
        _set_choices(self.fields["selected"], [(v, v) for v in picked])

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("action") == self.ASSIGN and not (data.get("team") or data.get("assignee")):
            self.add_error("team", _("Choose a team or a crew member to assign to."))
        if data.get("action") == self.TRANSITION and not data.get("status"):
            self.add_error("status", _("Choose the new status."))
        return data


class FieldUpdateForm(forms.Form):
    """A crew's one-tap status change from the field view: the new status, a public note
    (needed where the city's transition says so) and a photo."""

    status = forms.SlugField(widget=forms.HiddenInput)
    public_note = forms.CharField(
        label=_("Note for the resident"),
        required=False,
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    photo = forms.FileField(label=_("Photo"), required=False)
