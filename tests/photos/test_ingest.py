"""Photo ingest: the real type decides, metadata never survives, orientation does, copies are
stored through the storage API, and every refusal names the file and the reason."""

import io

import pytest
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from geo311.photos.models import Photo
from geo311.photos.services import photo_absolute_url, photo_ingest, photos_attach_to_event
from tests.geo311.conftest import make_request

pytestmark = pytest.mark.django_db

GPS_IFD = 0x8825
ORIENTATION = 0x0112
MAKE = 0x010F


def jpeg_with_gps(size: tuple[int, int] = (400, 200), orientation: int = 6) -> bytes:
    """A 400x200 JPEG that says 'rotate 90°' and where it was taken, as a phone writes it."""
    image = Image.new("RGB", size, (200, 30, 30))
    image.paste((20, 20, 220), (0, 0, size[0] // 2, size[1]))  # left half blue
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    exif[MAKE] = "PhoneCo"
    exif.get_ifd(GPS_IFD).update({1: "N", 2: (41.0, 52.0, 55.0), 3: "W", 4: (87.0, 37.0, 40.0)})
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif, quality=90)
    return out.getvalue()


def upload(data: bytes, name: str = "photo.jpg", kind: str = "image/jpeg") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type=kind)


@pytest.fixture
def request_row(chicago_city):  # type: ignore[no-untyped-def]
    return make_request("POTHOLE")


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):  # type: ignore[no-untyped-def]
    settings.MEDIA_ROOT = tmp_path / "media"


def stored_image(name: str) -> Image.Image:
    with default_storage.open(name) as f:
        image = Image.open(io.BytesIO(f.read()))
        image.load()
    return image


def test_a_phone_photo_loses_its_metadata_but_keeps_its_orientation(request_row) -> None:
    photo = photo_ingest(upload(jpeg_with_gps()), request=request_row)
    large = stored_image(photo.large)
    assert large.format == "JPEG"
    # Orientation 6 (rotate 90° clockwise) is applied to the pixels: 400x200 becomes 200x400,
    # and the blue left half is now the top half.
    assert large.size == (200, 400) == (photo.width, photo.height)
    assert large.getpixel((100, 50))[2] > 150
    assert large.getpixel((100, 350))[0] > 150
    for name in (photo.large, photo.thumbnail):
        image = stored_image(name)
        assert dict(image.getexif()) == {}
        assert "exif" not in image.info
        assert "icc_profile" not in image.info
        with default_storage.open(name) as f:
            raw = f.read()
        assert b"PhoneCo" not in raw
        assert b"Exif" not in raw
    assert photo.content_type == "image/jpeg"
    assert photo.public is True


def test_copies_are_resized_to_the_configured_sizes(request_row, settings) -> None:
    settings.GEO311_PHOTO_LARGE_PX = 300
    settings.GEO311_PHOTO_THUMBNAIL_PX = 64
    photo = photo_ingest(upload(jpeg_with_gps((1200, 600), orientation=1)), request=request_row)
    assert stored_image(photo.large).size == (300, 150)
    assert stored_image(photo.thumbnail).size == (64, 32)
    urls = photo.urls()
    assert urls["large"].startswith("/media/photos/")
    assert urls["large"].endswith(".jpg")
    assert urls["thumbnail"].endswith("-thumb.jpg")
    assert photo_absolute_url(photo).startswith("http://")


def test_the_content_decides_the_type_not_the_name(request_row) -> None:
    png = io.BytesIO()
    Image.new("RGBA", (50, 40), (0, 128, 0, 128)).save(png, "PNG")
    photo = photo_ingest(upload(png.getvalue(), "looks-like.jpg"), request=request_row)
    assert photo.content_type == "image/png"
    assert photo.large.endswith(".png")
    assert stored_image(photo.large).mode == "RGBA"


@pytest.mark.parametrize(
    ("data", "name", "reason"),
    [
        (b"#!/bin/sh\nrm -rf /\n", "evil.jpg", "evil.jpg: not an image (or a damaged one)"),
        (jpeg_with_gps()[:300], "cut.jpg", "cut.jpg: not an image (or a damaged one)"),
        (b"", "empty.jpg", "empty.jpg: the file is empty"),
    ],
)
def test_what_is_not_a_photo_is_refused_by_name(request_row, data, name, reason) -> None:
    with pytest.raises(ValidationError) as refused:
        photo_ingest(upload(data, name), request=request_row)
    assert refused.value.message_dict == {"photos": [reason]}
    assert not Photo.objects.exists()


def test_other_image_types_are_refused_with_the_type_found(request_row) -> None:
    gif = io.BytesIO()
    Image.new("P", (10, 10)).save(gif, "GIF")
    with pytest.raises(ValidationError) as refused:
        photo_ingest(upload(gif.getvalue(), "anim.png"), request=request_row)
    assert refused.value.message_dict == {
        "photos": ["anim.png: a GIF image; send a JPEG, PNG or WebP photo"]
    }


def test_size_and_count_limits(request_row, settings) -> None:
    settings.GEO311_PHOTO_MAX_BYTES = 2_000_000
    big = upload(b"\xff" * 2_000_001, "huge.jpg")
    with pytest.raises(ValidationError) as refused:
        photo_ingest(big, request=request_row)
    assert refused.value.message_dict == {"photos": ["huge.jpg: larger than 2 MB"]}
    settings.GEO311_PHOTO_MAX_PER_REQUEST = 2
    for _ in range(2):
        photo_ingest(upload(jpeg_with_gps()), request=request_row)
    with pytest.raises(ValidationError) as refused:
        photo_ingest(upload(jpeg_with_gps(), "third.jpg"), request=request_row)
    assert refused.value.message_dict == {"photos": ["third.jpg: a report keeps at most 2 photos"]}
    assert Photo.objects.filter(request=request_row).count() == 2


def test_a_decompression_bomb_is_refused(request_row, monkeypatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)
    with pytest.raises(ValidationError) as refused:
        photo_ingest(upload(jpeg_with_gps((400, 200)), "bomb.jpg"), request=request_row)
    assert refused.value.message_dict == {"photos": ["bomb.jpg: too many pixels"]}


def test_a_row_that_cannot_be_saved_leaves_no_files(request_row, settings, monkeypatch) -> None:
    def refuse(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("database went away")

    monkeypatch.setattr(Photo.objects, "create", refuse)
    with pytest.raises(RuntimeError):
        photo_ingest(upload(jpeg_with_gps()), request=request_row)
    media = settings.MEDIA_ROOT
    assert [p for p in media.rglob("*") if p.is_file()] == []


def test_photos_of_a_status_update_are_linked_to_it(request_row) -> None:
    photos = [photo_ingest(upload(jpeg_with_gps()), request=request_row) for _ in range(2)]
    event = request_row.events.get()
    photos_attach_to_event(photos, event)
    assert set(event.photos.values_list("pk", flat=True)) == {p.pk for p in photos}


def test_stored_copies_are_served_from_media(request_row, client) -> None:
    photo = photo_ingest(upload(jpeg_with_gps()), request=request_row)
    response = client.get(photo.urls()["thumbnail"])
    assert response.status_code == 200
    assert Image.open(io.BytesIO(b"".join(response.streaming_content))).format == "JPEG"
