from django.db.transaction import non_atomic_requests
from django.urls import path

from . import api

app_name = "requests"

# Read-only: no BEGIN/COMMIT around a single SELECT (as for the boundary lookup).
urlpatterns = [
    path("nearby", non_atomic_requests(api.NearbyRequestsApi.as_view()), name="nearby"),
    path("unsubscribe", api.UnsubscribeApi.as_view(), name="unsubscribe"),
    path("<str:public_id>/follow", api.FollowRequestApi.as_view(), name="follow"),
    path(
        "<str:public_id>/followers",
        non_atomic_requests(api.FollowersApi.as_view()),
        name="followers",
    ),
]
