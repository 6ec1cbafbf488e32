"""Photos of a report and of its status updates, stored through Django's storage API.

Only cleaned copies are kept (EXIF, GPS and every other metadata gone, orientation applied to the
pixels): a large copy for viewing and a thumbnail. The upload as sent is never written anywhere.
"""

from django.core.files.storage import default_storage
from django.db import models

from geo311.models import ServiceRequest, StatusEvent


class Photo(models.Model):
    request = models.ForeignKey(ServiceRequest, on_delete=models.CASCADE, related_name="photos")
    # Set for a photo taken with a status update (a crew's "completed" photo).
    event = models.ForeignKey(
        StatusEvent, null=True, blank=True, on_delete=models.SET_NULL, related_name="photos"
    )
    public = models.BooleanField(
        default=True, help_text="Shown on the public tracking page and in notifications"
    )
    large = models.CharField(max_length=300, help_text="storage name of the large copy")
    thumbnail = models.CharField(max_length=300, help_text="storage name of the thumbnail")
    content_type = models.CharField(max_length=40)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    bytes = models.PositiveIntegerField(help_text="size of the large copy")
    sha256 = models.CharField(max_length=64, help_text="of the upload as sent (finds re-uploads)")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["request", "created_at", "id"]
        indexes = [models.Index(fields=["request", "public"], name="photo_request_public")]

    def __str__(self) -> str:
        return f"photo {self.pk} of {self.request_id}"

    def urls(self) -> dict[str, str]:
        """Where the copies are served (storage URLs: /media/... or an S3 address)."""
        return {
            "large": default_storage.url(self.large),
            "thumbnail": default_storage.url(self.thumbnail),
        }
