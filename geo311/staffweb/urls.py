from django.urls import path

from . import views

app_name = "staffweb"

urlpatterns = [
    path("", views.home, name="home"),
    path("queue/", views.queue, name="queue"),
    path("queue/map.geojson", views.queue_map, name="queue-map"),
    path("queue/counts.json", views.queue_counts, name="queue-counts"),
    path("queue/events", views.queue_events, name="queue-events"),
    path("queue/bulk", views.queue_bulk, name="queue-bulk"),
    path("field/", views.field, name="field"),
    path("field/work.json", views.field_work, name="field-work"),
    path("field/<str:public_id>/update", views.field_update, name="field-update"),
]
