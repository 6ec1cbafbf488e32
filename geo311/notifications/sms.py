"""SMS providers: one interface, a Twilio adapter (its REST API over httpx, base URL from a
setting so tests and proxies can stand in) and a console provider for development.

``GEO311_SMS_BACKEND`` names the class; empty turns SMS off (nothing is queued).
"""

import logging
from functools import cache
from typing import Protocol

import httpx
from django.conf import settings
from django.utils.module_loading import import_string

log = logging.getLogger(__name__)


class SmsError(Exception):
    """Sending failed. ``permanent``: retrying cannot help (an invalid number, a recipient
    who replied STOP); otherwise the job retries with backoff."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class SmsProvider(Protocol):
    def send(self, *, to: str, body: str) -> str:
        """Send ``body`` to ``to`` (E.164, +13125550199); return the provider's message id.
        Raises SmsError."""
        ...


class ConsoleSms:
    """Logs each message: for development machines without a provider account."""

    def send(self, *, to: str, body: str) -> str:
        log.warning("SMS to %s: %s", to, body)
        return "console"


class TwilioSms:
    """Twilio's Programmable Messaging REST API: POST
    ``{base}/2010-04-01/Accounts/{sid}/Messages.json`` with basic auth (account SID, auth
    token) and the form fields To, From (or MessagingServiceSid), Body; 201 with the message's
    ``sid``. Errors are JSON ``{code, message, status}``: 4xx other than 408 and 429 are
    permanent (21211 invalid number, 21610 the recipient replied STOP), the rest temporary."""

    def __init__(self) -> None:
        sid = settings.GEO311_TWILIO_ACCOUNT_SID
        if not sid or not settings.GEO311_TWILIO_AUTH_TOKEN:
            raise SmsError("GEO311_TWILIO_ACCOUNT_SID and GEO311_TWILIO_AUTH_TOKEN are not set")
        if not (settings.GEO311_TWILIO_FROM or settings.GEO311_TWILIO_MESSAGING_SERVICE_SID):
            raise SmsError("set GEO311_TWILIO_FROM or GEO311_TWILIO_MESSAGING_SERVICE_SID")
        self.path = f"/2010-04-01/Accounts/{sid}/Messages.json"
        self.client = httpx.Client(
            base_url=settings.GEO311_TWILIO_BASE_URL,
            auth=(sid, settings.GEO311_TWILIO_AUTH_TOKEN),
            timeout=httpx.Timeout(10.0),
        )

    def send(self, *, to: str, body: str) -> str:
        form = {"To": to, "Body": body}
        if settings.GEO311_TWILIO_MESSAGING_SERVICE_SID:
            form["MessagingServiceSid"] = settings.GEO311_TWILIO_MESSAGING_SERVICE_SID
        else:
            form["From"] = settings.GEO311_TWILIO_FROM
        try:
            answer = self.client.post(self.path, data=form)
        except httpx.HTTPError as exc:
            raise SmsError(f"Twilio unreachable: {exc!r}") from exc
        if answer.status_code in (200, 201):
            sid = answer.json().get("sid")
            if not sid:
                raise SmsError(f"Twilio answered {answer.status_code} without a message sid")
            return str(sid)
        try:
            error = answer.json()
            detail = f"Twilio error {error.get('code')}: {error.get('message')}"
        except ValueError:
            detail = f"Twilio answered {answer.status_code}: {answer.text[:200]}"
        permanent = 400 <= answer.status_code < 500 and answer.status_code not in (408, 429)
        raise SmsError(detail, permanent=permanent)


def sms_enabled() -> bool:
    return bool(settings.GEO311_SMS_BACKEND)


@cache
def _provider(path: str) -> SmsProvider:
    provider: SmsProvider = import_string(path)()
    return provider


def sms_provider() -> SmsProvider:
    """The configured provider, made once per process (Twilio keeps its HTTP connections)."""
    if not settings.GEO311_SMS_BACKEND:
        raise SmsError("SMS is off (GEO311_SMS_BACKEND is empty)", permanent=True)
    return _provider(settings.GEO311_SMS_BACKEND)


def phone_e164(phone: str) -> str:
    """A phone number as providers want it (+ and digits), or "" when it cannot be one. A
    number without a country code gets ``GEO311_SMS_DEFAULT_COUNTRY_CODE`` (North American
    10-digit numbers by default). No phone-number library is installed; this is the small
    part of the job geo311 needs, and the provider checks the rest."""
    phone = phone.strip()
    digits = "".join(c for c in phone if c.isdigit())
    if phone.startswith("+"):
        number = digits
    elif phone.startswith("00"):
        number = digits[2:]
    else:
        country = settings.GEO311_SMS_DEFAULT_COUNTRY_CODE
        national = (
            digits[1:] if country == "1" and len(digits) == 11 and digits[0] == "1" else digits
        )
        number = country + national
    return f"+{number}" if 8 <= len(number) <= 15 else ""
