from django.contrib import admin
from django.utils.html import format_html

from .models import Photo


@admin.register(Photo)
class PhotoAdmin(admin.ModelAdmin):
    list_display = ["id", "request", "event", "public", "preview", "width", "height", "created_at"]
    list_filter = ["public"]
    list_editable = ["public"]
    raw_id_fields = ["request", "event"]
    readonly_fields = ["large", "thumbnail", "content_type", "width", "height", "bytes", "sha256"]
    search_fields = ["request__public_id"]

    @admin.display(description="photo")
    def preview(self, photo: Photo) -> str:
        urls = photo.urls()
        return format_html('<a href="{}"><img src="{}" alt="" height="48"></a>', *urls.values())
