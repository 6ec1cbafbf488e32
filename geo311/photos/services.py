"""Photo ingest: the real type sniffed by Pillow, metadata stripped, resized copies stored.

``photo_ingest`` refuses what is not a JPEG, PNG or WebP image whatever its name or declared type,
what is larger than GEO311_PHOTO_MAX_BYTES or than Pillow's decompression-bomb pixel limit, and
more than GEO311_PHOTO_MAX_PER_REQUEST photos on one request; the error names the file.
"""

import hashlib
import io
import uuid
import warnings
from dataclasses import dataclass
from typing import IO, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone
from PIL import Image, ImageOps, UnidentifiedImageError

from geo311.models import ServiceRequest, StatusEvent

from .models import Photo

# What Pillow must find inside the file, and what each is stored as.
ACCEPTED = {"JPEG": "JPEG", "PNG": "PNG", "WEBP": "WEBP", "MPO": "JPEG"}
CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}
SAVE_OPTIONS: dict[str, dict[str, Any]] = {
    "JPEG": {"quality": 85, "optimize": True},
    "PNG": {"optimize": True},
    "WEBP": {"quality": 85},
}


@dataclass(frozen=True)
class Cleaned:
    """One copy, re-encoded from pixels only."""

    data: bytes
    format: str
    width: int
    height: int


def photo_ingest(
    upload: IO[bytes] | Any,
    *,
    request: ServiceRequest,
    event: StatusEvent | None = None,
    public: bool = True,
) -> Photo:
    """Check, clean and store one uploaded photo of ``request`` (optionally of ``event``).

    Raises ValidationError({"photos": ...}) naming the file when it is refused. The copies are
    written before the row; if the row cannot be saved the copies are removed again.
    """
    name = getattr(upload, "name", None) or "photo"
    raw = _read_limited(upload, name)
    limit = settings.GEO311_PHOTO_MAX_PER_REQUEST
    if Photo.objects.filter(request=request).count() >= limit:
        raise ValidationError({"photos": f"{name}: a report keeps at most {limit} photos"})
    image = _open(raw, name)
    large = _copy(image, settings.GEO311_PHOTO_LARGE_PX)
    thumb = _copy(image, settings.GEO311_PHOTO_THUMBNAIL_PX)
    stem = f"photos/{timezone.now():%Y/%m}/{uuid.uuid4().hex}"
    ext = EXTENSIONS[large.format]
    stored = [
        default_storage.save(f"{stem}.{ext}", ContentFile(large.data)),
        default_storage.save(f"{stem}-thumb.{ext}", ContentFile(thumb.data)),
    ]
    try:
        with transaction.atomic():
            return Photo.objects.create(
                request=request,
                event=event,
                public=public,
                large=stored[0],
                thumbnail=stored[1],
                content_type=CONTENT_TYPES[large.format],
                width=large.width,
                height=large.height,
                bytes=len(large.data),
                sha256=hashlib.sha256(raw).hexdigest(),
            )
    except BaseException:
        for stored_name in stored:
            default_storage.delete(stored_name)
        raise


def photos_attach_to_event(photos: list[Photo], event: StatusEvent) -> None:
    """Link photos ingested before their status update existed (the update needs their URL)."""
    Photo.objects.filter(pk__in=[p.pk for p in photos], request=event.request_id).update(
        event=event
    )


def photo_absolute_url(photo: Photo) -> str:
    """The large copy's URL for messages sent off-site (emails, SMS, webhooks)."""
    url = photo.urls()["large"]
    if url.startswith(("http://", "https://")):
        return url
    return settings.GEO311_SITE_URL + (url if url.startswith("/") else "/" + url)


def _read_limited(upload: Any, name: str) -> bytes:
    limit = settings.GEO311_PHOTO_MAX_BYTES
    if getattr(upload, "size", None) is not None and upload.size > limit:
        raise ValidationError({"photos": f"{name}: larger than {limit // 1_000_000} MB"})
    if hasattr(upload, "seek"):
        upload.seek(0)
    raw = upload.read(limit + 1)
    if len(raw) > limit:
        raise ValidationError({"photos": f"{name}: larger than {limit // 1_000_000} MB"})
    if not raw:
        raise ValidationError({"photos": f"{name}: the file is empty"})
    return bytes(raw)


def _open(raw: bytes, name: str) -> Image.Image:
    """The decoded image with its orientation applied, or a ValidationError that names the file."""
    try:
        with warnings.catch_warnings():
            # Past MAX_IMAGE_PIXELS Pillow only warns; past twice that it raises. Refuse both.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            probe = Image.open(io.BytesIO(raw))
            kind = probe.format or "?"
            if kind not in ACCEPTED:
                raise ValidationError(
                    {"photos": f"{name}: a {kind} image; send a JPEG, PNG or WebP photo"}
                )
            probe.verify()
            image = Image.open(io.BytesIO(raw))
            image.load()
    except ValidationError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ValidationError({"photos": f"{name}: too many pixels"}) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise ValidationError({"photos": f"{name}: not an image (or a damaged one)"}) from None
    image.info["target_format"] = ACCEPTED[kind]
    oriented = ImageOps.exif_transpose(image)
    oriented.info["target_format"] = ACCEPTED[kind]
    return oriented


def _copy(image: Image.Image, max_px: int) -> Cleaned:
    """Pixels only, scaled to fit max_px: no EXIF, GPS, ICC, XMP or text chunks come along."""
    fmt = image.info["target_format"]
    copy = image.copy()
    copy.thumbnail((max_px, max_px), Image.Resampling.LANCZOS)
    wanted = ("RGB", "L") if fmt == "JPEG" else ("RGB", "RGBA", "L", "LA")
    if copy.mode not in wanted:
        copy = copy.convert("RGBA" if "A" in copy.getbands() and fmt != "JPEG" else "RGB")
    # A new image gets the pixels and nothing of the original's info (EXIF, ICC, XMP, text).
    clean = Image.new(copy.mode, copy.size)
    clean.paste(copy)
    out = io.BytesIO()
    options = SAVE_OPTIONS[fmt]
    clean.save(out, format=fmt, **options)
    return Cleaned(out.getvalue(), fmt, clean.width, clean.height)
