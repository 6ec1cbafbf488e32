"""Open311 POST takes the reporter's notification preference (extension ``notify``)."""

from typing import Any

import pytest

from geo311.models import ApiKey, ServiceRequest
from geo311.notifications.models import Notify, ReporterPreference
from tests.conftest import LOOP
from tests.geo311.conftest import errors_of, post

pytestmark = pytest.mark.django_db


@pytest.fixture
def key(chicago_city: None) -> ApiKey:
    return ApiKey.objects.create(name="notify test client")


def _form(key: ApiKey, **extra: str) -> dict[str, str]:
    return {
        "api_key": key.key,
        "service_code": "SIDEWALK",
        "lat": str(LOOP[0]),
        "long": str(LOOP[1]),
        **extra,
    }


def test_post_stores_the_reporters_choice(chicago_city: None, client: Any, key: ApiKey) -> None:
    answer = post(client, _form(key, email="a@example.org", phone="3125550100", notify="both"))
    assert answer.status_code == 201, answer.content
    request = ServiceRequest.objects.get(public_id=answer.json()[0]["service_request_id"])
    assert ReporterPreference.objects.get(request=request).notify == Notify.BOTH


def test_without_a_choice_nothing_is_stored(chicago_city: None, client: Any, key: ApiKey) -> None:
    answer = post(client, _form(key, email="a@example.org"))
    assert answer.status_code == 201
    assert not ReporterPreference.objects.exists()  # the default: email, as it was given


def test_a_choice_needs_its_contact(chicago_city: None, client: Any, key: ApiKey) -> None:
    answer = post(client, _form(key, email="a@example.org", notify="sms"))
    assert answer.status_code == 400
    [(_, description)] = errors_of(answer)
    assert "notify" in description
    assert "phone" in description
    assert not ServiceRequest.objects.exists()  # the request is not filed either
    answer = post(client, _form(key, notify="pigeon"))
    assert answer.status_code == 400
    assert "notify" in errors_of(answer)[0][1]
