"""Settings read from the environment (12-factor). Development defaults work on a fresh machine;
``production.py`` removes the defaults that must not reach production."""

from pathlib import Path
from typing import Any

import environ
import pghistory

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="dev-only-insecure-key-change-me")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])

DATABASES = {
    "default": env.db_url("DATABASE_URL", default="postgis://geo311:geo311@127.0.0.1:5432/geo311"),
}
# PostGIS with a connection health check that needs no round trip (geo311.db.base).
if DATABASES["default"]["ENGINE"] == "django.contrib.gis.db.backends.postgis":
    DATABASES["default"]["ENGINE"] = "geo311.db"
DATABASES["default"]["ATOMIC_REQUESTS"] = True
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# psycopg prepares the statements that ask for it: only the duplicate-candidate query does
# (geo311.sql_duplicates); Django's own cursors bind on the client and never prepare. Set
# DATABASE_PREPARED=false behind a pooler that cannot keep prepared statements (PgBouncer
# before 1.21 in transaction mode).
if env.bool("DATABASE_PREPARED", default=True):
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = 5
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.gis",
    "django.contrib.postgres",
    "rest_framework",
    "rest_framework.authtoken",
    "rest_framework_gis",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    # Jobs (notifications, heavy analyses) live in PostgreSQL: enqueued in the transaction of the
    # change that causes them. Before the apps whose tasks it discovers.
    "procrastinate.contrib.django",
    # The audit trail: triggers (pgtrigger) write each change of a tracked row (pghistory).
    "pgtrigger",
    "pghistory",
    "pghistory.admin",
    "rules",
    "geo311",
    "geo311.notifications",
    "geo311.photos",
    "geo311.web",
    "geo311.staffweb",
    "boundaries",
    "importers",
    "maps",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # Residents' pages in the browser's language (Accept-Language), where translated.
    "geo311.middleware.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "geo311.middleware.HistoryMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "geo311.urls"
WSGI_APPLICATION = "geo311.wsgi.application"
ASGI_APPLICATION = "geo311.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "geo311.context_processors.site",
                "geo311.notifications.context_processors.live_updates",
            ],
        },
    },
]

# Object-level permissions by department (geo311/rules.py, with the rules package) beside
# Django's model permissions of the role groups.
AUTHENTICATION_BACKENDS = [
    "rules.permissions.ObjectPermissionBackend",
    "django.contrib.auth.backends.ModelBackend",
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("GEO311_TIME_ZONE", default="America/Chicago")
USE_I18N = True
USE_TZ = True

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"

STATIC_URL = "static/"
STATIC_ROOT = env.path("DJANGO_STATIC_ROOT", default=BASE_DIR / "var" / "static")
# Map libraries from npm (package.json; `make setup` runs npm ci), served as our own static files.
NODE_MODULES = BASE_DIR / "node_modules"
STATICFILES_DIRS = [
    ("vendor/leaflet", NODE_MODULES / "leaflet" / "dist"),
    ("vendor/maplibre-gl", NODE_MODULES / "maplibre-gl" / "dist"),
]
MEDIA_ROOT = env.path("DJANGO_MEDIA_ROOT", default=BASE_DIR / "var" / "media")
MEDIA_URL = "media/"
STORAGES: dict[str, dict[str, Any]] = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Uploads (photos) in an S3-compatible bucket instead of MEDIA_ROOT: GEO311_MEDIA_S3_BUCKET plus
# the AWS_* variables django-storages reads (AWS_S3_ENDPOINT_URL for MinIO, Ceph, R2, ...).
if env.str("GEO311_MEDIA_S3_BUCKET", default=""):
    STORAGES["default"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env.str("GEO311_MEDIA_S3_BUCKET"),
            "endpoint_url": env.str("AWS_S3_ENDPOINT_URL", default="") or None,
            "region_name": env.str("AWS_S3_REGION_NAME", default="") or None,
            "querystring_auth": env.bool("AWS_QUERYSTRING_AUTH", default=False),
            "file_overwrite": False,
        },
    }
# Served by the app itself from MEDIA_ROOT (fine for one server; put a web server or the bucket in
# front at scale and set this false).
GEO311_SERVE_MEDIA = env.bool("GEO311_SERVE_MEDIA", default=True)
# Photos: largest upload accepted, how many per report, and the sizes of the stored copies.
GEO311_PHOTO_MAX_BYTES = env.int("GEO311_PHOTO_MAX_BYTES", default=10_000_000)
GEO311_PHOTO_MAX_PER_REQUEST = env.int("GEO311_PHOTO_MAX_PER_REQUEST", default=6)
GEO311_PHOTO_LARGE_PX = env.int("GEO311_PHOTO_LARGE_PX", default=1600)
GEO311_PHOTO_THUMBNAIL_PX = env.int("GEO311_PHOTO_THUMBNAIL_PX", default=320)
# Uploaded boundary files (zipped shapefiles, GeoPackages) can be tens of MB.
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

REST_FRAMEWORK = {
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

# OpenAPI at /api/schema/, Swagger UI at /api/docs/ served from this host (sidecar), no CDN.
SPECTACULAR_SETTINGS = {
    "TITLE": "geo311",
    "DESCRIPTION": (
        "Boundary lookup API and Open311 GeoReport v2 (/open311/v2/, XML or JSON by path "
        "suffix) of a PostGIS-backed 311 service."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Open311 errors are lists too.
    "ENABLE_LIST_MECHANICS_ON_NON_2XX": True,
    # Analysis runs have a kind and a status of their own, as boundary layers and versions do.
    "ENUM_NAME_OVERRIDES": {
        "AnalysisKindEnum": "maps.models.AnalysisKind",
        "AnalysisRunStatusEnum": "maps.models.RunStatus",
        "LayerKindEnum": "boundaries.models.LayerKind",
    },
}

# --- geo311 ---------------------------------------------------------------------------------
# One SRID policy: geometries are stored in WGS84; metres are measured with geography casts.
GEO311_STORAGE_SRID = 4326
# ST_Subdivide max vertices per piece of a boundary, for point lookup. Measured by
# `make bench ONLY=subdivide_piece_size`: 64 to 512 give the same lookup latency within noise
# (16, 32 and whole polygons are slower); 256 subdivides the 7 NYC layers in half the time of 64.
GEO311_SUBDIVIDE_MAX_VERTICES = env.int("GEO311_SUBDIVIDE_MAX_VERTICES", default=256)
# Overlaps and gaps smaller than this (square metres) are not reported by check_boundaries.
GEO311_TOPOLOGY_TOLERANCE_M2 = env.float("GEO311_TOPOLOGY_TOLERANCE_M2", default=1.0)
# Hot spot analysis and reports measure in this projected CRS (EPSG code, unit metre); 0 picks
# the UTM zone of the city outline's centre (maps.selectors.analysis_srid).
GEO311_ANALYSIS_SRID = env.int("GEO311_ANALYSIS_SRID", default=0)
# A stored analysis answers its question until the data changes, or while it is younger than
# this many seconds even if new requests came in since (a busy city never stops changing).
GEO311_ANALYSIS_MAX_AGE = env.int("GEO311_ANALYSIS_MAX_AGE", default=900)
# Performance reports and analyses outside a transaction (the worker, the command) read their
# requests on this many connections at once (one snapshot), so the database works on as many
# cores; 1 reads on the caller's own connection.
GEO311_ANALYSIS_CONNECTIONS = env.int("GEO311_ANALYSIS_CONNECTIONS", default=2)

# Vector tiles (maps.tiles): features per tile at most; the highest zoom served; up to which
# zoom requests are drawn as cell counts instead of points; how long clients may keep a tile
# before revalidating (ETag); and the server-side tile cache (a table, shared by every process).
GEO311_TILE_MAX_FEATURES = env.int("GEO311_TILE_MAX_FEATURES", default=20000)
GEO311_TILE_MAX_ZOOM = env.int("GEO311_TILE_MAX_ZOOM", default=22)
GEO311_TILE_CELL_MAX_ZOOM = 12  # the levels of maps_request_cell (migration maps 0002)
GEO311_TILE_MAX_AGE = env.int("GEO311_TILE_MAX_AGE", default=60)
GEO311_TILE_CACHE = env.bool("GEO311_TILE_CACHE", default=True)
# ... and in each process, the tiles it served last (checked against the generation too).
GEO311_TILE_MEMORY_MB = env.int("GEO311_TILE_MEMORY_MB", default=64)
# Whether a process hears tile layers and areas change (LISTEN) instead of reading their
# numbers for every tile it serves from memory; off behind a pooler that cannot LISTEN
# (PgBouncer in transaction mode).
GEO311_TILE_LISTEN = env.bool("GEO311_TILE_LISTEN", default=True)

# Open311: the jurisdiction this server answers for (a different jurisdiction_id is a 404), and
# what discovery tells client developers.
# Requests of a sensitive category are published at the centre of a cell of this size (metres of
# EPSG:3857, the tiles' grid) instead of their exact point (geo311/privacy.py).
GEO311_SENSITIVE_GRID_M = env.float("GEO311_SENSITIVE_GRID_M", default=250.0)
GEO311_JURISDICTION_ID = env.str("GEO311_JURISDICTION_ID", default="chicago.il.us")
GEO311_OPEN311_CONTACT = env.str(
    "GEO311_OPEN311_CONTACT", default="311 service desk, 311@example.org"
)
GEO311_OPEN311_KEY_SERVICE = env.str(
    "GEO311_OPEN311_KEY_SERVICE", default="Ask the 311 service desk (311@example.org) for a key."
)

# Duplicate detection (geo311.duplicates). Categories may set their own radius, window and
# threshold; these are the defaults. Earlier requests within the radius (metres) and window
# (days) are candidates while open, or closed at most RECENTLY_CLOSED_DAYS before.
GEO311_DUPLICATE_RADIUS_M = env.float("GEO311_DUPLICATE_RADIUS_M", default=250.0)
GEO311_DUPLICATE_WINDOW_DAYS = env.int("GEO311_DUPLICATE_WINDOW_DAYS", default=30)
GEO311_DUPLICATE_RECENTLY_CLOSED_DAYS = env.float(
    "GEO311_DUPLICATE_RECENTLY_CLOSED_DAYS", default=2.0
)
# A new request whose best candidate scores at least this is linked to it for staff triage.
GEO311_DUPLICATE_LIKELY_SCORE = env.float("GEO311_DUPLICATE_LIKELY_SCORE", default=0.5)
# Logistic weights of the score (geo311/duplicates.py names the features), overridable as JSON
# with every key. Fitted by `python -m bench.duplicates_chicago --fit` on Chicago's labelled
# duplicates, as recorded and as a city without addresses or with scattered map pins would
# record them. There a repeat report often names another violation type, so description
# similarity fits below 0; it is held at 0 rather than let similar words count against a match.
# Chicago has one category: other_category (a candidate of the same group only) is a prior.
GEO311_DUPLICATE_WEIGHTS = env.json(
    "GEO311_DUPLICATE_WEIGHTS",
    default={
        "bias": -4.23,
        "distance": -1.68,
        "days": -1.31,
        "open": 5.14,
        "recently_closed": 3.65,
        "same_address": 2.02,
        "address_mismatch": -12.25,
        "other_category": -2.0,
        "description_similarity": 0.0,
        "nearby": -0.39,
    },
)

# Debian 12 ships GDAL 3.6; Django's GDAL binding only parses the CRS we store (4326) and the
# geometries PostGIS returns. Uploaded files are read by pyogrio's own, newer GDAL.
SILENCED_SYSTEM_CHECKS = ["gis.W001"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("DJANGO_LOG_LEVEL", default="INFO")},
    # procrastinate logs every task registration at INFO, on every manage.py call.
    "loggers": {
        "procrastinate": {"level": env.str("PROCRASTINATE_LOG_LEVEL", default="WARNING")},
        # httpx logs every request at INFO: each webhook and SMS.
        "httpx": {"level": "WARNING"},
    },
}

# The audit trail (django-pghistory): paths whose writes get no request context from the
# middleware (anonymous public endpoints; the services record who acted). See
# geo311/middleware.py.
GEO311_HISTORY_SKIP_PATHS = ("/open311/", "/api/v1/requests/")
PGHISTORY_MIDDLEWARE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
# History rows are read by object (pgh_obj, indexed in geo311.models.audited) and by context;
# the foreign keys inside a snapshot need no index of their own, and every index would cost
# each tracked change (bulk updates included).
PGHISTORY_FOREIGN_KEY_FIELD = pghistory.ForeignKey(db_index=False)
PGHISTORY_CONTEXT_FIELD = pghistory.ContextForeignKey(db_index=True)

# --- notifications (geo311.notifications) -------------------------------------------------------
# Where residents reach the site: links in messages (tracking page, unsubscribe) start here.
GEO311_SITE_URL = env.str("GEO311_SITE_URL", default="http://127.0.0.1:8000").rstrip("/")
# The public tracking page of a request; {public_id} is replaced.
GEO311_TRACKING_URL = env.str(
    "GEO311_TRACKING_URL", default=GEO311_SITE_URL + "/requests/{public_id}/"
)
GEO311_CITY_NAME = env.str("GEO311_CITY_NAME", default="Chicago 311 (demo)")
# Where the report page and the public map open (longitude, latitude, zoom), and the boundary
# layer the report page draws under the pin (its slug; blank draws none).
GEO311_MAP_CENTRE = env.list("GEO311_MAP_CENTRE", cast=float, default=[-87.6298, 41.8781, 12.0])
GEO311_REPORT_MAP_LAYER = env.str("GEO311_REPORT_MAP_LAYER", default="wards")
# Email: Django's SMTP backend, configured by one URL (smtp://user:password@host:587/?tls=True;
# submission+TLS: smtp+tls://...). Development default: print messages to the worker's log.
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=20)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="311 <no-reply@311.example.org>")
# Message-IDs are <key@this domain>: the same message retried keeps its id.
GEO311_MESSAGE_ID_DOMAIN = env.str("GEO311_MESSAGE_ID_DOMAIN", default="311.example.org")
# SMS: a provider class (geo311.notifications.sms); empty: no SMS is sent (nor queued).
GEO311_SMS_BACKEND = env.str("GEO311_SMS_BACKEND", default="")
GEO311_SMS_DEFAULT_COUNTRY_CODE = env.str("GEO311_SMS_DEFAULT_COUNTRY_CODE", default="1")
GEO311_TWILIO_BASE_URL = env.str("GEO311_TWILIO_BASE_URL", default="https://api.twilio.com")
GEO311_TWILIO_ACCOUNT_SID = env.str("GEO311_TWILIO_ACCOUNT_SID", default="")
GEO311_TWILIO_AUTH_TOKEN = env.str("GEO311_TWILIO_AUTH_TOKEN", default="")
GEO311_TWILIO_FROM = env.str("GEO311_TWILIO_FROM", default="")
GEO311_TWILIO_MESSAGING_SERVICE_SID = env.str("GEO311_TWILIO_MESSAGING_SERVICE_SID", default="")
GEO311_WEBHOOK_TIMEOUT_S = env.float("GEO311_WEBHOOK_TIMEOUT_S", default=10.0)
# Delivery jobs: attempts and the exponential backoff base (waits base^1, base^2, ... seconds;
# 15 attempts of base 2 keep trying for about 18 hours).
GEO311_NOTIFY_MAX_ATTEMPTS = env.int("GEO311_NOTIFY_MAX_ATTEMPTS", default=15)
GEO311_NOTIFY_RETRY_BASE_S = env.int("GEO311_NOTIFY_RETRY_BASE_S", default=2)
# A job whose worker stopped sending heartbeats this long ago (killed, host lost) is run again.
GEO311_JOBS_STALLED_AFTER_S = env.int("GEO311_JOBS_STALLED_AFTER_S", default=60)
# Workers beat every GEO311_WORKER_HEARTBEAT_S seconds: a few beats fit in the stall delay.
# New jobs wake the worker at once (LISTEN); a job that waited for another's lock is found by
# polling, every GEO311_WORKER_POLL_S seconds.
PROCRASTINATE_WORKER_DEFAULTS = {
    "fetch_job_polling_interval": env.float("GEO311_WORKER_POLL_S", default=1.0),
    "update_heartbeat_interval": env.float("GEO311_WORKER_HEARTBEAT_S", default=10.0),
    "stalled_worker_timeout": float(GEO311_JOBS_STALLED_AFTER_S),
}
# Area alert digests and the managers' overdue digest (cron, UTC).
GEO311_DIGEST_CRON = env.str("GEO311_DIGEST_CRON", default="0 12 * * *")
# Statuses whose closing email says "job done" (other closed statuses say "closed").
GEO311_DONE_STATUSES = env.list("GEO311_DONE_STATUSES", default=["completed", "fixed", "resolved"])
# Live updates (Server-Sent Events): the base URL of the ASGI server that serves
# /api/v1/requests/{id}/events, when it is not this site (make run: uvicorn on PORT+1); pages
# read it, the WSGI site redirects event streams there. Empty: this site serves them.
GEO311_EVENTS_URL = env.str("GEO311_EVENTS_URL", default="").rstrip("/")
# Origins whose pages may open event streams across origins (CORS for EventSource).
GEO311_EVENTS_CORS_ORIGINS = env.list("GEO311_EVENTS_CORS_ORIGINS", default=[GEO311_SITE_URL])
GEO311_EVENTS_KEEPALIVE_S = env.float("GEO311_EVENTS_KEEPALIVE_S", default=20.0)

# --- staff pages (geo311.staffweb) ---------------------------------------------------------------
# The statuses of the field view's two buttons (codes of the city config; each shows only where the
# config's transitions allow it from the request's status).
GEO311_FIELD_ON_SITE_STATUS = env.str("GEO311_FIELD_ON_SITE_STATUS", default="on-site")
GEO311_FIELD_DONE_STATUS = env.str("GEO311_FIELD_DONE_STATUS", default="completed")
