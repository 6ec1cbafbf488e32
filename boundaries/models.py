"""Boundary layers (wards, districts, zones), their versions, and their polygons.

A *layer* is a kind of area a city routes by; a *version* is one import of that layer's file;
*boundaries* are the polygons of a version. Only one version of a layer is active at a time.
Each boundary is also stored as ``ST_Subdivide`` pieces (``BoundaryPart``) so that "which
polygons contain this point" touches a few small, well-indexed polygons instead of a 36,000-vertex
outline. Parts are written by ``boundaries.services``, never by ``save()``.
"""

from django.contrib.gis.db import models
from django.db.models import Q, UniqueConstraint


class LayerKind(models.TextChoices):
    WARD = "ward", "Ward"
    COUNCIL_DISTRICT = "council_district", "Council district"
    DEPARTMENT_DISTRICT = "department_district", "Department district"
    MAINTENANCE_ZONE = "maintenance_zone", "Maintenance zone"
    JURISDICTION = "jurisdiction", "Jurisdiction outline"
    OTHER = "other", "Other area"


class Layer(models.Model):
    slug = models.SlugField(
        unique=True, help_text="Short name used in URLs and commands, e.g. wards"
    )
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=32, choices=LayerKind.choices, default=LayerKind.OTHER)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.name


class VersionStatus(models.TextChoices):
    STAGED = "staged", "Staged"
    ACTIVE = "active", "Active"
    RETIRED = "retired", "Retired"


class LayerVersion(models.Model):
    layer = models.ForeignKey(Layer, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField(help_text="1, 2, 3… within the layer")
    status = models.CharField(
        max_length=16, choices=VersionStatus.choices, default=VersionStatus.STAGED
    )
    source_name = models.CharField(max_length=500, help_text="File the version was imported from")
    source_layer = models.CharField(max_length=200, blank=True)
    checksum = models.CharField(max_length=64, help_text="SHA-256 of the source file")
    source_crs = models.CharField(max_length=200, help_text="CRS the file came in, e.g. EPSG:2263")
    code_field = models.CharField(max_length=100)
    name_field = models.CharField(max_length=100, blank=True)
    imported_at = models.DateTimeField(auto_now_add=True)
    effective_from = models.DateField(null=True, blank=True)
    effective_to = models.DateField(null=True, blank=True)
    activated_at = models.DateTimeField(null=True, blank=True)
    feature_count = models.PositiveIntegerField(default=0)
    vertex_count = models.PositiveIntegerField(default=0)
    report = models.JSONField(default=dict, blank=True, help_text="The import report")

    class Meta:
        ordering = ["layer__slug", "-number"]
        constraints = [
            UniqueConstraint(fields=["layer", "number"], name="layerversion_unique_number"),
            UniqueConstraint(
                fields=["layer"],
                condition=Q(status=VersionStatus.ACTIVE),
                name="layerversion_one_active_per_layer",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.layer.slug} v{self.number} ({self.status})"


class Boundary(models.Model):
    version = models.ForeignKey(LayerVersion, on_delete=models.CASCADE, related_name="boundaries")
    code = models.CharField(max_length=100)
    name = models.CharField(max_length=300, blank=True)
    attributes = models.JSONField(default=dict, blank=True, help_text="The source file's fields")
    geom = models.MultiPolygonField(srid=4326)

    class Meta:
        ordering = ["version", "code"]
        verbose_name_plural = "boundaries"
        constraints = [
            UniqueConstraint(fields=["version", "code"], name="boundary_unique_code_per_version"),
        ]

    def __str__(self) -> str:
        return f"{self.name or self.code}"


class BoundaryPart(models.Model):
    """One ST_Subdivide piece of a boundary: the table point lookups scan (GiST on geom)."""

    boundary = models.ForeignKey(Boundary, on_delete=models.CASCADE, related_name="parts")
    version = models.ForeignKey(LayerVersion, on_delete=models.CASCADE, related_name="+")
    geom = models.PolygonField(srid=4326)

    class Meta:
        indexes = [models.Index(fields=["version"])]
