"""Sending one delivery on its channel: email through Django's mail backend (SMTP in
production), SMS through the configured provider, webhooks as signed JSON POSTs.

Each returns what to log (the provider's id, the webhook's answer) or raises ``DeliveryError``
(``permanent`` when retrying cannot help); any other exception is temporary and retried.
"""

import contextlib
import json
import smtplib
import threading
from dataclasses import dataclass

import httpx
from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.backends.base import BaseEmailBackend

from .models import Channel, Delivery
from .sms import SmsError, sms_provider
from .webhooks import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, webhook_signature


class DeliveryError(Exception):
    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class Sent:
    provider_id: str
    response: str = ""


def delivery_transmit(*, delivery: Delivery) -> Sent:
    if delivery.channel == Channel.EMAIL:
        return _email(delivery)
    if delivery.channel == Channel.SMS:
        return _sms(delivery)
    if delivery.channel == Channel.WEBHOOK:
        return _webhook(delivery)
    raise DeliveryError(f"unknown channel {delivery.channel}", permanent=True)


def message_id(*, key: str) -> str:
    """The Message-ID of a delivery: derived from its idempotency key, so the one message a
    crash made us send twice arrives twice with one id, and receivers can drop the repeat."""
    return f"<{key[:40]}@{settings.GEO311_MESSAGE_ID_DOMAIN}>"


# One SMTP connection per worker thread, kept open between messages: a new one per message
# costs a TCP and SMTP handshake (and TLS in production) each time.
_smtp = threading.local()


def _mail_connection() -> BaseEmailBackend:
    connection = getattr(_smtp, "connection", None)
    if connection is None:
        connection = get_connection(fail_silently=False)
        # Opened here, so send_messages() leaves it open after the message.
        connection.open()
        _smtp.connection = connection
    return connection


def _drop_mail_connection() -> None:
    connection = getattr(_smtp, "connection", None)
    _smtp.connection = None
    if connection is not None:
        with contextlib.suppress(Exception):  # a broken connection, thrown away
            connection.close()


def _email(delivery: Delivery) -> Sent:
    content = delivery.content
    msgid = message_id(key=delivery.key)
    headers = {
        "Message-ID": msgid,
        "Auto-Submitted": "auto-generated",
        **content.get("headers", {}),
    }
    for attempt in (1, 2):
        connection = _mail_connection()
        message = EmailMultiAlternatives(
            subject=content["subject"],
            body=content["text"],
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[delivery.recipient],
            headers=headers,
            connection=connection,
        )
        if content.get("html"):
            message.attach_alternative(content["html"], "text/html")
        try:
            message.send()
            return Sent(provider_id=msgid)
        except smtplib.SMTPServerDisconnected:
            # A kept connection the server closed while idle: once more on a new one.
            _drop_mail_connection()
            if attempt == 2:
                raise
        except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused) as exc:
            codes = (
                [code for code, _ in exc.recipients.values()]
                if isinstance(exc, smtplib.SMTPRecipientsRefused)
                else [exc.smtp_code]
            )
            _drop_mail_connection()
            raise DeliveryError(
                f"refused by the mail server: {exc}", permanent=all(c >= 500 for c in codes)
            ) from exc
        except smtplib.SMTPResponseException as exc:
            _drop_mail_connection()
            raise DeliveryError(
                f"mail server answered {exc.smtp_code}: {exc.smtp_error!r}",
                permanent=exc.smtp_code >= 500,
            ) from exc
        except (OSError, smtplib.SMTPException):
            _drop_mail_connection()
            raise
    raise AssertionError("unreachable")


def _sms(delivery: Delivery) -> Sent:
    try:
        provider_id = sms_provider().send(to=delivery.recipient, body=delivery.content["body"])
    except SmsError as exc:
        raise DeliveryError(str(exc), permanent=exc.permanent) from exc
    return Sent(provider_id=provider_id)


_http = threading.local()


def _webhook(delivery: Delivery) -> Sent:
    subscription = delivery.webhook
    if subscription is None:
        raise DeliveryError("the webhook subscription was deleted", permanent=True)
    if not subscription.active:
        raise DeliveryError("the webhook subscription is switched off", permanent=True)
    body = json.dumps(delivery.content, separators=(",", ":"), sort_keys=True).encode()
    client = getattr(_http, "client", None)
    if client is None:
        client = _http.client = httpx.Client(timeout=settings.GEO311_WEBHOOK_TIMEOUT_S)
    try:
        answer = client.post(
            delivery.recipient,
            content=body,
            headers={
                "Content-Type": "application/json",
                "User-Agent": "geo311-webhooks",
                SIGNATURE_HEADER: webhook_signature(secret=subscription.secret, body=body),
                DELIVERY_HEADER: delivery.key,
                EVENT_HEADER: str(delivery.content.get("type", "")),
            },
        )
    except httpx.HTTPError as exc:
        raise DeliveryError(f"{delivery.recipient} unreachable: {exc!r}", permanent=False) from exc
    response = answer.text[:1000]
    if 200 <= answer.status_code < 300:
        return Sent(provider_id=str(answer.status_code), response=response)
    # Every other answer is retried with backoff: the receiver may be deploying or down.
    raise DeliveryError(f"{delivery.recipient} answered {answer.status_code}", permanent=False)
