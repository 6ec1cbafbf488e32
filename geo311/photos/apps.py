from django.apps import AppConfig


class PhotosConfig(AppConfig):
    name = "geo311.photos"
    label = "photos"
    verbose_name = "Photos"
    default_auto_field = "django.db.models.BigAutoField"
