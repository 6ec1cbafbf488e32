from django.apps import AppConfig


class StaffwebConfig(AppConfig):
    """The staff pages: the department queue and the crews' field view."""

    name = "geo311.staffweb"
    label = "staffweb"
    verbose_name = "Staff pages"
