from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    """Email, SMS and webhook notifications of request events, area alerts, staff alerts and
    live updates (Server-Sent Events). Its own migrations, beside geo311's."""

    name = "geo311.notifications"
    label = "notifications"
    verbose_name = "notifications"
    default_auto_field = "django.db.models.BigAutoField"
