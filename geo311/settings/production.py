"""Production settings: no insecure defaults. Refuses to start without a secret key."""

from .base import *  # noqa: F403
from .base import env

DEBUG = False
SECRET_KEY = env.str("DJANGO_SECRET_KEY")  # no default: missing key = ImproperlyConfigured
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS")

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=False)
# Preloading HSTS binds the city's whole domain to HTTPS in browsers for months and is hard to
# undo, so it stays the operator's explicit choice (DJANGO_SECURE_HSTS_PRELOAD=true).
SILENCED_SYSTEM_CHECKS = [*SILENCED_SYSTEM_CHECKS, "security.W021"]  # noqa: F405
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# Notifications go out by SMTP: to a local mail server (localhost:25, Django's own default)
# unless EMAIL_URL names another; never to the console as in development.
vars().update(env.email_url("EMAIL_URL", default="smtp://localhost:25"))
# Links in messages: the site's public address, by default the first allowed host over https.
GEO311_SITE_URL = (
    env.str("GEO311_SITE_URL", default="") or f"https://{ALLOWED_HOSTS[0].lstrip('.')}"
).rstrip("/")
GEO311_TRACKING_URL = env.str(
    "GEO311_TRACKING_URL", default=GEO311_SITE_URL + "/requests/{public_id}/"
)
GEO311_EVENTS_CORS_ORIGINS = env.list("GEO311_EVENTS_CORS_ORIGINS", default=[GEO311_SITE_URL])
