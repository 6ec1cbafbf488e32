"""Routes of the public map layers: GeoJSON layers (mounted at ``api/v1/layers/``) and OGC API
- Features (mounted at ``ogc/``). Reads only: no transaction around them (ATOMIC_REQUESTS
would add BEGIN/COMMIT to every page)."""

from django.db.transaction import non_atomic_requests
from django.urls import path

from . import layers_api, ogc

layer_urlpatterns = (
    [
        path(
            "requests.geojson",
            non_atomic_requests(layers_api.RequestsLayerApi.as_view()),
            name="requests",
        ),
        path(
            "boundaries/<slug:slug>.geojson",
            non_atomic_requests(layers_api.BoundariesLayerApi.as_view()),
            name="boundaries",
        ),
    ],
    "layers",
)

ogc_urlpatterns = (
    [
        path("", non_atomic_requests(ogc.LandingPageApi.as_view()), name="landing"),
        path("conformance", non_atomic_requests(ogc.ConformanceApi.as_view()), name="conformance"),
        path("collections", non_atomic_requests(ogc.CollectionsApi.as_view()), name="collections"),
        path(
            "collections/<str:collection_id>",
            non_atomic_requests(ogc.CollectionApi.as_view()),
            name="collection",
        ),
        path(
            "collections/<str:collection_id>/items",
            non_atomic_requests(ogc.ItemsApi.as_view()),
            name="items",
        ),
        path(
            "collections/<str:collection_id>/items/<str:feature_id>",
            non_atomic_requests(ogc.ItemApi.as_view()),
            name="item",
        ),
    ],
    "ogc",
)
