"""Open311 api_key checks. Keys are ``geo311.models.ApiKey`` rows, managed in the admin; each
process reads them from its copy of the city configuration (``geo311.cache``)."""

import datetime as dt

from django.utils import timezone

from geo311.cache import CityConfig
from geo311.models import ApiKey

from .errors import forbidden

# Recording every use would turn each POST into two writes; a minute is precise enough to see
# which clients are alive.
LAST_USED_PRECISION = dt.timedelta(minutes=1)

# When this process last recorded each key's use (by pk): the cached copy of the key keeps the
# time it was loaded with, so it cannot tell.
_recorded: dict[int, dt.datetime] = {}


def api_key_authenticate(*, key: str, config: CityConfig) -> ApiKey:
    """The active ApiKey ``key`` of ``config``, its ``last_used_at`` brought up to the minute;
    a 403 Open311Error when the key is missing, unknown or switched off."""
    if not key:
        raise forbidden("missing: POST /requests needs the api_key given to your application")
    api_key = config.api_keys.get(key)
    if api_key is None:
        raise forbidden("not a valid key (unknown or switched off)")
    now = timezone.now()
    last = max(filter(None, (api_key.last_used_at, _recorded.get(api_key.pk))), default=None)
    if last is None or now - last > LAST_USED_PRECISION:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        _recorded[api_key.pk] = now
    return api_key
