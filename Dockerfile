# geo311 web image: Django + GeoDjango served by gunicorn on port 8000.
# The database (PostgreSQL + PostGIS) is not in this image; see compose.yaml and docs/operations.md.
# The map libraries come from npm at build time and are served as our own static files.
FROM node:20-bookworm-slim AS frontend
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund

FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# GeoDjango loads GDAL, GEOS and PROJ from the system (Debian's GDAL pulls in the other two).
RUN apt-get update \
    && apt-get install -y --no-install-recommends gdal-bin libgdal-dev \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# Dependencies first, from the lock, so code changes do not reinstall them.
COPY requirements/lock.txt requirements/lock.txt
RUN pip install -r requirements/lock.txt

COPY . .
COPY --from=frontend /app/node_modules node_modules
# The project runs from /app (gunicorn and manage.py put it on sys.path); it is not pip-installed.
# Static files are collected at build time with the development settings, which need no secrets;
# production settings serve the same STATIC_ROOT through WhiteNoise.
RUN DJANGO_SETTINGS_MODULE=geo311.settings python manage.py collectstatic --noinput -v0 \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin geo311 \
    && mkdir -p var/media \
    && chown geo311:geo311 var/media

USER geo311
ENV DJANGO_SETTINGS_MODULE=geo311.settings.production \
    WEB_CONCURRENCY=3
VOLUME ["/app/var/media"]
EXPOSE 8000

# /health checks the database too. It is asked as the proxy would: with an allowed Host and
# X-Forwarded-Proto: https (otherwise production settings answer 400 or redirect to https).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; h = os.environ.get('DJANGO_ALLOWED_HOSTS', 'localhost').split(',')[0].strip().lstrip('.').replace('*', 'localhost'); u.urlopen(u.Request('http://127.0.0.1:8000/health', headers={'Host': h, 'X-Forwarded-Proto': 'https'}), timeout=4)"]

# gunicorn takes its worker count from WEB_CONCURRENCY and extra flags from GUNICORN_CMD_ARGS.
CMD ["gunicorn", "geo311.wsgi", "--bind", "0.0.0.0:8000", "--access-logfile", "-"]
