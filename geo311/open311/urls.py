from collections.abc import Callable

from django.db.transaction import non_atomic_requests
from django.http import HttpResponseBase
from django.urls import re_path

from . import api

app_name = "open311"

# Every endpoint in both formats, chosen by the suffix. Codes and ids are any text but "/".
# No view runs in ATOMIC_REQUESTS' transaction: reads need none (BEGIN/COMMIT would add two
# round trips to each), and the writes (request_create, request_update_from_external) are
# their own transactions.
FORMAT = r"\.(?P<fmt>xml|json)$"


def view(cls: type[api.Open311Api]) -> Callable[..., HttpResponseBase]:
    return non_atomic_requests(cls.as_view())


urlpatterns = [
    re_path(r"^discovery" + FORMAT, view(api.DiscoveryApi), name="discovery"),
    re_path(r"^services" + FORMAT, view(api.ServiceListApi), name="services"),
    re_path(
        r"^services/(?P<service_code>[^/]+)" + FORMAT,
        view(api.ServiceDefinitionApi),
        name="service-definition",
    ),
    re_path(r"^requests" + FORMAT, view(api.RequestsApi), name="requests"),
    re_path(
        r"^requests/(?P<service_request_id>[^/]+)/nearby" + FORMAT,
        view(api.RequestNearbyApi),
        name="request-nearby",
    ),
    re_path(
        r"^requests/(?P<service_request_id>[^/]+)" + FORMAT,
        view(api.RequestDetailApi),
        name="request-detail",
    ),
    re_path(r"^tokens/(?P<token>[^/]+)" + FORMAT, view(api.TokenApi), name="token"),
    re_path(
        r"^servicerequestupdates" + FORMAT,
        view(api.RequestUpdatesEndpointApi),
        name="request-updates",
    ),
    re_path(r"^coverage" + FORMAT, view(api.CoverageApi), name="coverage"),
    re_path(
        r"^(?P<path>.*?)(?:\.(?P<fmt>xml|json))?$",
        view(api.UnknownEndpointApi),
        name="unknown",
    ),
]
