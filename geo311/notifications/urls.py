from django.urls import path

from . import api, views

app_name = "notifications"

urlpatterns = [
    path("api/v1/requests/<str:public_id>/events", views.request_events, name="events"),
    path("api/v1/alerts", api.AreaSubscriptionCreateApi.as_view(), name="alerts"),
    path("requests/<str:public_id>/", views.tracking_page, name="tracking"),
    path("notifications/unsubscribe/<str:token>", views.unsubscribe, name="unsubscribe"),
    path("notifications/alerts/confirm/<str:token>", views.area_confirm, name="area-confirm"),
]
