"""The Twilio adapter against a local HTTP server process that plays Twilio's Messages API."""

from typing import Any
from urllib.parse import parse_qs

import pytest

from geo311.notifications import sms
from tests.notifications.conftest import Recorder
from tests.notifications.servers import TWILIO_SID, TWILIO_TOKEN


@pytest.fixture
def twilio(http_server: Recorder, settings: Any) -> Recorder:
    settings.GEO311_TWILIO_BASE_URL = f"http://127.0.0.1:{http_server.port}"
    settings.GEO311_TWILIO_ACCOUNT_SID = TWILIO_SID
    settings.GEO311_TWILIO_AUTH_TOKEN = TWILIO_TOKEN
    settings.GEO311_TWILIO_FROM = "+13125550100"
    settings.GEO311_TWILIO_MESSAGING_SERVICE_SID = ""
    http_server.clear()
    return http_server


def test_twilio_sends_and_returns_the_message_sid(twilio: Recorder) -> None:
    sid = sms.TwilioSms().send(to="+13125550199", body="Report 42 is done")
    [request] = twilio.entries()
    assert request["path"] == f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"
    form = {k: v[0] for k, v in parse_qs(request["body"]).items()}
    assert form == {"To": "+13125550199", "From": "+13125550100", "Body": "Report 42 is done"}
    assert sid == request["sid"]
    assert sid.startswith("SM")


def test_twilio_refusing_the_credentials_is_a_permanent_error(
    twilio: Recorder, settings: Any
) -> None:
    settings.GEO311_TWILIO_AUTH_TOKEN = "wrong"
    with pytest.raises(sms.SmsError, match="20003") as failure:
        sms.TwilioSms().send(to="+13125550199", body="x")
    assert failure.value.permanent
    assert not twilio.entries()


def test_twilio_unreachable_is_a_temporary_error(settings: Any) -> None:
    settings.GEO311_TWILIO_BASE_URL = "http://127.0.0.1:9"
    settings.GEO311_TWILIO_ACCOUNT_SID = TWILIO_SID
    settings.GEO311_TWILIO_AUTH_TOKEN = TWILIO_TOKEN
    settings.GEO311_TWILIO_FROM = "+13125550100"
    with pytest.raises(sms.SmsError, match="unreachable") as failure:
        sms.TwilioSms().send(to="+13125550199", body="x")
    assert not failure.value.permanent


def test_twilio_needs_its_settings(settings: Any) -> None:
    settings.GEO311_TWILIO_ACCOUNT_SID = ""
    with pytest.raises(sms.SmsError, match="GEO311_TWILIO_ACCOUNT_SID"):
        sms.TwilioSms()
