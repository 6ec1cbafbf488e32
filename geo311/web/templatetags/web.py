"""Small template helpers for the report form."""

from typing import Any

from django import forms, template

register = template.Library()


@register.filter
def field(form: forms.Form, name: str) -> forms.BoundField | None:
    """The bound field ``name`` of ``form`` (None for a form-wide error)."""
    return form[name] if name in form.fields else None


@register.filter
def in_set(value: Any, values: Any) -> bool:
    return value in values
