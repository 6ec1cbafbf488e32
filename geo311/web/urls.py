from django.urls import path

from . import views

# No app_name: the report page is ``home``, which base.html links when it exists.
urlpatterns = [
    path("", views.report, name="home"),
    path("staff/call/", views.staff_call, name="staff-call"),
    path("map/", views.public_map, name="public-map"),
    path("api/v1/addresses/search", views.addresses, name="address-search"),
    path("requests/<str:public_id>/follow/", views.follow, name="tracking-follow"),
    path("requests/<str:public_id>/unfollow/", views.unfollow, name="tracking-unfollow"),
]
