"""Request middleware of the project."""

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from pghistory.middleware import HistoryMiddleware as PghistoryMiddleware


class HistoryMiddleware(PghistoryMiddleware):
    """pghistory's context (the signed-in user and the URL) for the audit trail of changes made
    through the admin and the staff API.

    Not on the public hot paths (``GEO311_HISTORY_SKIP_PATHS``: Open311 and the public request
    API): their callers are anonymous, the services they call record who acted themselves
    (``geo311.services.Actor``), and the context would prefix every write statement of every
    resident's POST with a ``set_config`` call.
    """

    def __call__(self, request: HttpRequest) -> Any:
        if request.path.startswith(settings.GEO311_HISTORY_SKIP_PATHS):
            response: HttpResponse = self.get_response(request)
            return response
        return super().__call__(request)
