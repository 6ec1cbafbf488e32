"""Open311 api_key checks. Keys are ``geo311.models.ApiKey`` rows, managed in the admin."""

import datetime as dt

from django.utils import timezone

from geo311 import selectors
from geo311.models import ApiKey

from .errors import forbidden

# Recording every use would turn each POST into two writes; a minute is precise enough to see
# which clients are alive.
LAST_USED_PRECISION = dt.timedelta(minutes=1)


def api_key_authenticate(*, key: str) -> ApiKey:
    """The active ApiKey ``key``, its ``last_used_at`` brought up to now; a 403 Open311Error
    when the key is missing, unknown or switched off."""
    if not key:
        raise forbidden("missing: POST /requests needs the api_key given to your application")
    api_key = selectors.api_key_get(key=key)
    if api_key is None:
        raise forbidden("not a valid key (unknown or switched off)")
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_PRECISION:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
    return api_key
