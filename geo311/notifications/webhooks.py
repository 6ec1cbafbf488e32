"""Webhook signatures: HMAC-SHA256 of ``<unix time>.<body>`` with the subscription's secret,
sent as ``X-Geo311-Signature: t=<unix time>,v1=<hex digest>`` (the scheme Stripe made common:
the time inside the signature stops an old request from being replayed later)."""

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-Geo311-Signature"
DELIVERY_HEADER = "X-Geo311-Delivery"
EVENT_HEADER = "X-Geo311-Event"


def webhook_signature(*, secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The signature header value for ``body`` sent at ``timestamp`` (now by default)."""
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def webhook_signature_valid(
    *, secret: str, body: bytes, header: str, tolerance_s: int = 300, now: float | None = None
) -> bool:
    """What a receiver checks: the signature matches ``body`` and was made at most
    ``tolerance_s`` seconds from ``now``. Compares in constant time."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        t = int(parts["t"])
        given = parts["v1"]
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - t) > tolerance_s:
        return False
    expected = webhook_signature(secret=secret, body=body, timestamp=t).split("v1=", 1)[1]
    return hmac.compare_digest(expected, given)
