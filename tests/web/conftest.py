"""The recording SMTP and HTTP servers of the notification tests, for the browser tests' worker."""

from tests.notifications.conftest import http_server, smtp_server

__all__ = ["http_server", "smtp_server"]
