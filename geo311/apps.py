from django.apps import AppConfig


class Geo311Config(AppConfig):
    name = "geo311"
    verbose_name = "geo311 service requests"

    def ready(self) -> None:
        from . import roles  # noqa: F401  (registers the object-level permissions)
