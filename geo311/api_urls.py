from django.db.transaction import non_atomic_requests
from django.urls import path

from . import api

app_name = "requests"

# Read-only: no BEGIN/COMMIT around a single SELECT (as for the boundary lookup).
urlpatterns = [
    path("nearby", non_atomic_requests(api.NearbyRequestsApi.as_view()), name="nearby"),
]
