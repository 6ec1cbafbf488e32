"""Open311 errors: a list of ``{code, description}`` in the response's format, each description
naming the parameter the client must fix. 404 for an unknown service, request or jurisdiction,
403 for a missing or wrong api_key, 400 for anything else."""

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS, RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response

# Model and service field names → the Open311 parameter a client sent.
PARAMETER_NAMES = {
    "category": "service_code",
    "location": "lat/long",
    "address": "address_string",
    "reporter_first_name": "first_name",
    "reporter_last_name": "last_name",
    "reporter_email": "email",
    "reporter_phone": "phone",
    "reporter_device_id": "device_id",
    "reporter_account_id": "account_id",
    "requested_at": "requested_datetime",
    NON_FIELD_ERRORS: "",
    "non_field_errors": "",
}


class Open311Error(Exception):
    """One or more problems answered with one HTTP status."""

    def __init__(self, status: int, descriptions: list[str]):
        super().__init__("; ".join(descriptions))
        self.status = status
        self.descriptions = descriptions

    def body(self) -> list[dict[str, Any]]:
        return [{"code": self.status, "description": d} for d in self.descriptions]


def _described(field: str, message: str) -> str:
    return f"{field}: {message}" if field else message


def bad_request(field: str, message: str) -> Open311Error:
    return Open311Error(400, [_described(field, message)])


def not_found(field: str, message: str) -> Open311Error:
    return Open311Error(404, [_described(field, message)])


def forbidden(message: str) -> Open311Error:
    return Open311Error(403, [_described("api_key", message)])


def from_messages(
    messages: Mapping[str, Any], *, names: Mapping[str, str] | None = None
) -> Open311Error:
    """A 400 listing every message of a ``{field: [messages]}`` mapping (Django's
    ``message_dict`` or a serializer's ``errors``), fields renamed to Open311 parameters."""
    renames = {**PARAMETER_NAMES, **(names or {})}
    descriptions = []
    for field, value in messages.items():
        for message in value if isinstance(value, list | tuple) else [value]:
            descriptions.append(_described(renames.get(field, field), str(message)))
    return Open311Error(400, descriptions)


def from_django(
    exc: DjangoValidationError, *, names: Mapping[str, str] | None = None
) -> Open311Error:
    if hasattr(exc, "error_dict"):
        return from_messages(exc.message_dict, names=names)
    return Open311Error(400, list(exc.messages))


def as_open311_error(exc: Exception) -> Open311Error | None:
    """The Open311 form of an exception raised while answering, or None for a server error."""
    if isinstance(exc, Open311Error):
        return exc
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail
        if isinstance(detail, Mapping):
            return from_messages(detail)
        return Open311Error(400, [str(d) for d in detail] if isinstance(detail, list) else [detail])
    if isinstance(exc, DjangoValidationError):
        return from_django(exc)
    if isinstance(exc, Http404 | exceptions.NotFound):
        return Open311Error(404, [str(exc) or "not found"])
    if isinstance(exc, RequestDataTooBig):
        return Open311Error(400, ["the request body is too large"])
    if isinstance(exc, SuspiciousOperation):  # e.g. too many fields
        return Open311Error(400, [f"the request body was refused: {exc}"])
    if isinstance(exc, exceptions.UnsupportedMediaType | exceptions.ParseError):
        return Open311Error(
            400,
            [f"{exc.detail} (POST bodies are application/x-www-form-urlencoded)"],
        )
    if isinstance(exc, exceptions.APIException):
        return Open311Error(exc.status_code, [str(exc.detail)])
    return None


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF exception handler for the Open311 views: every error in the spec's format. (No
    rollback to mark: the views run outside ATOMIC_REQUESTS, and request_create is atomic.)"""
    error = as_open311_error(exc)
    if error is None:
        return None
    return Response(error.body(), status=error.status)
