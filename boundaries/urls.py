from django.urls import path

from . import api

app_name = "boundaries"

urlpatterns = [
    path("lookup", api.BoundaryLookupApi.as_view(), name="lookup"),
    path("layers/", api.LayerListApi.as_view(), name="layer-list"),
    path("layers/<slug:slug>/", api.LayerDetailApi.as_view(), name="layer-detail"),
    path(
        "layers/<slug:slug>/boundaries.geojson",
        api.LayerBoundariesApi.as_view(),
        name="layer-boundaries",
    ),
    path("<int:pk>/", api.BoundaryDetailApi.as_view(), name="boundary-detail"),
]
