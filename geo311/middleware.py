"""Request middleware of the project."""

from typing import Any

from django.conf import settings
from django.conf.urls.i18n import is_language_prefix_patterns_used
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.middleware.locale import LocaleMiddleware as DjangoLocaleMiddleware
from django.utils import translation
from django.utils.cache import patch_vary_headers
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


class LocaleMiddleware(DjangoLocaleMiddleware):
    """Django's LocaleMiddleware (the browser's language, Accept-Language, where translated),
    without the language-prefix work a site with no ``i18n_patterns`` does not need.

    Django looks for a language at the start of every path, twice per request, whether or not
    any URL has a language prefix: "/tiles/..." has "tiles" looked up as a language code, and the
    LookupError is not kept by its cache, so every request pays the whole search (a tenth of a
    cached tile's time). Without language-prefixed URLs the answer never matters: this chooses
    the same language and sets the same headers (Vary: Accept-Language, Content-Language). With
    them, Django's own middleware runs.
    """

    def process_request(self, request: HttpRequest) -> None:
        if self._prefixed(request):
            return super().process_request(request)
        translation.activate(translation.get_language_from_request(request))
        request.LANGUAGE_CODE = translation.get_language()
        return None

    def process_response(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        if self._prefixed(request):
            return super().process_response(request, response)
        patch_vary_headers(response, ("Accept-Language",))
        response.headers.setdefault("Content-Language", translation.get_language())
        return response

    @staticmethod
    def _prefixed(request: HttpRequest) -> bool:
        urlconf = getattr(request, "urlconf", settings.ROOT_URLCONF)
        return bool(is_language_prefix_patterns_used(urlconf)[0])
