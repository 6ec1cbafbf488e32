"""The report form: the resident's (and the call-taker's) report as a plain HTML form that
works without JavaScript; the page's script only fills the place and hides what does not apply.

The questions of every category are fields of the form (``q-<SERVICE>-<CODE>``), rendered from
the service definitions, so a page without JavaScript can answer those of the category it
chose. They take their values as given: the answers are checked by
``geo311.services.attributes_clean`` inside ``request_create``, as for an Open311 POST, and its
errors (``attribute[CODE]``) are put back next to the question they name.
"""

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib.gis.geos import Point
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext_lazy as _

from geo311.addresses import AddressNotFound, address_resolve
from geo311.cache import CityConfig
from geo311.models import Datatype, ServiceAttribute, ServiceCategory
from geo311.notifications.models import Notify
from geo311.notifications.services import reporter_preference_check
from geo311.services import MAX_DESCRIPTION, Reporter, location_from_lat_long

# Keys of request_create's errors → the form field that shows them.
_ERROR_FIELDS = {
    "service_code": "service_code",
    "category": "service_code",
    "description": "description",
    "address": "address",
    "reporter_email": "email",
    "reporter_phone": "phone",
    "notify": "notify",
    "photos": "photos",
}


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Several files from one input (Django's documented pattern)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("widget", MultipleFileInput(attrs={"accept": "image/*"}))
        super().__init__(*args, **kwargs)

    def clean(self, data: Any, initial: Any = None) -> list[Any]:
        single = super().clean
        if isinstance(data, list | tuple):
            return [single(d, initial) for d in data if d]
        return [single(data, initial)] if data else []


class AnswerField(forms.Field):
    """A question's answer, passed on as given (a list for a multivaluelist): checking it is
    ``attributes_clean``'s job."""

    def to_python(self, value: Any) -> Any:
        return value


def _answer_widget(attribute: ServiceAttribute) -> forms.Widget:
    attrs: dict[str, Any] = {"data-datatype": attribute.datatype}
    if attribute.required:
        attrs["aria-required"] = "true"
    choices = [(v.key, v.name) for v in attribute.values.all()]
    datatype = attribute.datatype
    if datatype == Datatype.MULTIVALUELIST:
        return forms.CheckboxSelectMultiple(attrs=attrs, choices=choices)
    if datatype == Datatype.SINGLEVALUELIST:
        return forms.Select(attrs=attrs, choices=[("", "—"), *choices])
    if datatype == Datatype.NUMBER:
        return forms.NumberInput(attrs={**attrs, "step": "any", "inputmode": "decimal"})
    if datatype == Datatype.DATETIME:
        return forms.DateTimeInput(attrs={**attrs, "type": "datetime-local"})
    if datatype == Datatype.TEXT:
        return forms.Textarea(attrs={**attrs, "rows": 3, "maxlength": MAX_DESCRIPTION})
    return forms.TextInput(attrs={**attrs, "maxlength": 300})


def question_name(service_code: str, code: str) -> str:
    return f"q-{service_code}-{code}"


@dataclass(frozen=True)
class QuestionGroup:
    """One category's questions as bound fields, for its fieldset."""

    category: ServiceCategory
    fields: list[forms.BoundField]


class ReportForm(forms.Form):
    """A report: category, place (lat/long or an address), answers, description, photos and how
    the reporter hears back. ``staff`` adds the caller's name (the call-taker's form)."""

    service_code = forms.ChoiceField(label=_("What is the problem?"))
    lat = forms.CharField(
        label=_("Latitude"), required=False, widget=forms.TextInput(attrs={"inputmode": "decimal"})
    )
    long = forms.CharField(
        label=_("Longitude"), required=False, widget=forms.TextInput(attrs={"inputmode": "decimal"})
    )
    address = forms.CharField(
        label=_("Address"),
        required=False,
        max_length=300,
        widget=forms.TextInput(attrs={"autocomplete": "street-address", "type": "search"}),
    )
    description = forms.CharField(
        label=_("Describe the problem"),
        required=False,
        max_length=MAX_DESCRIPTION,
        widget=forms.Textarea(attrs={"rows": 4}),
    )
    photos = MultipleFileField(label=_("Photos"), required=False)
    first_name = forms.CharField(label=_("Caller's first name"), required=False, max_length=100)
    last_name = forms.CharField(label=_("Caller's last name"), required=False, max_length=100)
    email = forms.EmailField(
        label=_("Email"),
        required=False,
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )
    phone = forms.CharField(
        label=_("Mobile phone (for SMS)"),
        required=False,
        max_length=50,
        widget=forms.TextInput(attrs={"type": "tel", "autocomplete": "tel"}),
    )
    notify = forms.ChoiceField(
        label=_("How should we keep you posted?"),
        choices=[
            (Notify.EMAIL, _("By email")),
            (Notify.SMS, _("By SMS")),
            (Notify.BOTH, _("By email and SMS")),
            (Notify.NONE, _("Not at all")),
        ],
        required=False,
        widget=forms.RadioSelect,
    )
    anonymous = forms.BooleanField(
        label=_("Report anonymously (no contact details kept, no messages)"), required=False
    )

    def __init__(self, *args: Any, config: CityConfig, staff: bool = False, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.config, self.staff = config, staff
        categories = sorted(
            (c for c in config.categories.values() if c.active),
            key=lambda c: (c.group or "~", c.order, c.name),
        )
        grouped: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for c in categories:
            grouped[c.group or str(_("Other"))].append((c.service_code, c.name))
        choice: forms.ChoiceField = self.fields["service_code"]  # type: ignore[assignment]
        choice.choices = [("", _("Choose a category")), *grouped.items()]
        self.categories = categories
        for category in categories:
            for attribute in category.attributes.all():
                if attribute.variable:
                    label = attribute.description
                    self.fields[question_name(category.service_code, attribute.code)] = AnswerField(
                        label=label,
                        required=False,
                        help_text=attribute.datatype_description,
                        widget=_answer_widget(attribute),
                    )
        if not staff:
            del self.fields["first_name"], self.fields["last_name"]
            self.fields["email"].label = _("Your email")
            self.fields["phone"].label = _("Your mobile phone (for SMS)")
        else:
            self.fields["email"].label = _("Caller's email")
            self.fields["phone"].label = _("Caller's phone")
            self.fields["anonymous"].label = _("The caller stays anonymous")

    # --- rendering -----------------------------------------------------------------------

    def question_groups(self) -> Iterator[QuestionGroup]:
        for category in self.categories:
            fields = [
                self[question_name(category.service_code, a.code)]
                for a in category.attributes.all()
                if a.variable
            ]
            if fields:
                yield QuestionGroup(category, fields)

    def required_questions(self) -> set[str]:
        return {
            question_name(c.service_code, a.code)
            for c in self.categories
            for a in c.attributes.all()
            if a.variable and a.required
        }

    def mark_invalid(self) -> None:
        """Screen readers hear which inputs are wrong and why (``aria-invalid``, the error's
        id in ``aria-describedby``)."""
        for name in self.errors:
            if name in self.fields:
                attrs = self.fields[name].widget.attrs
                attrs["aria-invalid"] = "true"
                attrs["aria-describedby"] = f"{self[name].auto_id}-error"

    # --- checking ------------------------------------------------------------------------

    def clean(self) -> dict[str, Any]:
        data = super().clean() or self.cleaned_data
        code = data.get("service_code")
        if code:
            data["category"] = self.config.categories[code]
        if data.get("anonymous"):
            data["email"], data["phone"], data["first_name"], data["last_name"] = "", "", "", ""
            data["notify"] = Notify.NONE
        elif not data.get("notify"):
            # As for Open311: email when an email is given; SMS only when asked.
            data["notify"] = Notify.EMAIL if data.get("email") else Notify.NONE
        # An email or phone refused above is not missing as well.
        unsure = {"email": (Notify.EMAIL, Notify.BOTH), "phone": (Notify.SMS, Notify.BOTH)}
        if not any(name in self.errors and data["notify"] in n for name, n in unsure.items()):
            try:
                reporter_preference_check(
                    notify=data["notify"], email=data.get("email", ""), phone=data.get("phone", "")
                )
            except ValidationError as exc:
                self.add_error("notify", exc.message_dict["notify"])
        self._clean_place(data)
        return data

    def _clean_place(self, data: dict[str, Any]) -> None:
        lat, long = (data.get("lat") or "").strip(), (data.get("long") or "").strip()
        address = (data.get("address") or "").strip()
        if lat or long:
            try:
                data["location"] = location_from_lat_long(lat=lat, long=long)
            except ValidationError as exc:
                for name, messages in exc.message_dict.items():
                    self.add_error(name, messages)
            return
        if not address:
            self.add_error(
                "address",
                _("Drop a pin on the map, use your location, or type the address."),
            )
            return
        try:
            found = address_resolve(address_string=address)
        except AddressNotFound as exc:
            self.add_error("address", str(exc))
            return
        data["location"] = found.location
        data["address"] = found.address
        data["address_id"] = found.address_id
        data["zipcode"] = found.zipcode

    def answers(self) -> dict[str, list[str]]:
        """The chosen category's answers, code → values, as ``request_create`` takes them; a
        datetime-local value (no zone) is in the city's time zone."""
        category: ServiceCategory = self.cleaned_data["category"]
        answers: dict[str, list[str]] = {}
        for attribute in category.attributes.all():
            if not attribute.variable:
                continue
            value = self.cleaned_data.get(question_name(category.service_code, attribute.code))
            values = [str(v) for v in (value if isinstance(value, list) else [value]) if v]
            if attribute.datatype == Datatype.DATETIME:
                values = [_with_zone(v) for v in values]
            if values:
                answers[attribute.code] = values
        return answers

    def reporter(self) -> Reporter:
        data = self.cleaned_data
        return Reporter(
            first_name=data.get("first_name", ""),
            last_name=data.get("last_name", ""),
            email=data.get("email", ""),
            phone=data.get("phone", ""),
        )

    def location(self) -> Point:
        return self.cleaned_data["location"]

    def add_service_errors(self, exc: ValidationError) -> None:
        """``request_create``'s errors next to the fields they name."""
        category: ServiceCategory | None = self.cleaned_data.get("category")
        for key, messages in exc.message_dict.items():
            if key.startswith("attribute[") and category is not None:
                name = question_name(category.service_code, key[len("attribute[") : -1])
                if name in self.fields:
                    self.add_error(name, messages)
                    continue
            if key == "location":
                place = "lat" if self.cleaned_data.get("lat") else "address"
                self.add_error(place, messages)
                continue
            field = _ERROR_FIELDS.get(key)
            self.add_error(field if field in self.fields else None, messages)


def _with_zone(value: str) -> str:
    parsed = parse_datetime(value)
    if parsed is None or parsed.tzinfo is not None:
        return value  # attributes_clean names what is wrong with it
    return timezone.make_aware(parsed).isoformat()
