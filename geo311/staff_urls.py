from django.urls import path

from . import staff_api as api

app_name = "staff"

urlpatterns = [
    path("token", api.StaffTokenApi.as_view(), name="token"),
    path("requests", api.QueueApi.as_view(), name="queue"),
    path("requests/file", api.FileForCallerApi.as_view(), name="file"),
    path("requests/<str:public_id>", api.StaffRequestDetailApi.as_view(), name="detail"),
    path("requests/<str:public_id>/history", api.HistoryApi.as_view(), name="history"),
    path("requests/<str:public_id>/transition", api.TransitionApi.as_view(), name="transition"),
    path("requests/<str:public_id>/assign", api.AssignApi.as_view(), name="assign"),
    path("requests/<str:public_id>/notes", api.NoteApi.as_view(), name="notes"),
    path("requests/<str:public_id>/merge", api.MergeApi.as_view(), name="merge"),
    path("requests/<str:public_id>/move", api.MoveApi.as_view(), name="move"),
]
