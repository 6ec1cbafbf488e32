"""Settings package. ``geo311.settings`` is the development/test configuration; production
deployments set ``DJANGO_SETTINGS_MODULE=geo311.settings.production``."""

from .base import *  # noqa: F403
