from django.apps import AppConfig


class WebConfig(AppConfig):
    """The residents' pages (report, public map) and the call-taker's form."""

    name = "geo311.web"
    label = "web"
    verbose_name = "Public pages"
