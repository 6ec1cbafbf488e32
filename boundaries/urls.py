from django.db.transaction import non_atomic_requests
from django.urls import path

from . import api

app_name = "boundaries"

# Read-only endpoints skip ATOMIC_REQUESTS: a lookup is one SELECT, and BEGIN/COMMIT would
# double its round trips on the hottest path.
urlpatterns = [
    path("lookup", non_atomic_requests(api.BoundaryLookupApi.as_view()), name="lookup"),
    path("layers/", non_atomic_requests(api.LayerListApi.as_view()), name="layer-list"),
    path(
        "layers/<slug:slug>/",
        non_atomic_requests(api.LayerDetailApi.as_view()),
        name="layer-detail",
    ),
    path(
        "layers/<slug:slug>/boundaries.geojson",
        non_atomic_requests(api.LayerBoundariesApi.as_view()),
        name="layer-boundaries",
    ),
    path(
        "<int:pk>/",
        non_atomic_requests(api.BoundaryDetailApi.as_view()),
        name="boundary-detail",
    ),
]
