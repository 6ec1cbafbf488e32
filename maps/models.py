"""Stored analyses: one row per analysis run (the job, its progress and its cached result) and
the cells, clusters and denominators they produce or read.

A run is keyed by what it was asked (kind, filter, parameters) and remembers the state of the
data it read (``maps.sql.data_version``): the same question asked again is answered from the
store until a request is added or changed, or for GEO311_ANALYSIS_MAX_AGE seconds after.
Writes go through ``maps.services``; reads through ``maps.selectors``. Geometries are WGS84
(EPSG:4326); cells are built in metres in a projected CRS (the run's ``params["srid"]``) and
stored transformed.
"""

from django.conf import settings
from django.contrib.gis.db import models
from django.contrib.postgres.fields import ArrayField
from django.db.models import Q, UniqueConstraint


class AnalysisKind(models.TextChoices):
    HOTSPOTS = "hotspots", "Hot spots (Getis-Ord Gi*)"
    EMERGING = "emerging", "Emerging hot spots (Gi* per time slice + Mann-Kendall)"
    CLUSTERS = "clusters", "Clusters (DBSCAN)"
    DENSITY = "density", "Kernel density"


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class AnalysisRun(models.Model):
    kind = models.CharField(max_length=16, choices=AnalysisKind.choices)
    key = models.CharField(max_length=64, help_text="SHA-256 of kind, filter and parameters")
    filter = models.JSONField(default=dict, help_text="the request filter, as asked")
    params = models.JSONField(default=dict, help_text="the analysis parameters, resolved")
    data_version = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=8, choices=RunStatus.choices, default=RunStatus.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0, help_text="percent done")
    message = models.CharField(max_length=300, blank=True, help_text="what the job is doing")
    result = models.JSONField(default=dict, blank=True, help_text="summary and small results")
    error = models.TextField(blank=True)
    job_id = models.BigIntegerField(null=True, blank=True, help_text="procrastinate job id")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            # One live run per question: a failed one may be asked again.
            UniqueConstraint(
                fields=["key"], condition=~Q(status="failed"), name="analysisrun_one_live_per_key"
            ),
        ]
        permissions = [
            ("view_reports", "Can see hot spot analyses and performance reports"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} ({self.status})"


class HotspotCell(models.Model):
    """One cell of a hot spot or emerging hot spot run: a hexagon (``cell`` = "i:j" of the run's
    grid) or a boundary (``cell`` = its code), with its Gi* result.

    ``p`` is the two-sided p-value of ``z``; ``q`` the Benjamini-Hochberg adjusted p-value over
    all cells of the run; ``gi_bin`` is +3/+2/+1 for a hot spot at 99/95/90% confidence after the
    FDR correction, the negative for cold spots, 0 otherwise. Emerging runs store the z-score and
    bin of the last time slice and the Mann-Kendall trend of the z-scores.
    """

    run = models.ForeignKey(AnalysisRun, on_delete=models.CASCADE, related_name="cells")
    cell = models.CharField(max_length=100)
    geom = models.MultiPolygonField(srid=4326)
    count = models.PositiveIntegerField(help_text="requests in the cell")
    denominator = models.FloatField(null=True, blank=True)
    value = models.FloatField(help_text="what was analysed: the count, or count / denominator")
    z = models.FloatField()
    p = models.FloatField()
    q = models.FloatField(help_text="FDR-adjusted p (Benjamini-Hochberg)")
    gi_bin = models.SmallIntegerField()
    hotspot_class = models.CharField(max_length=40)
    trend_z = models.FloatField(null=True, blank=True)
    trend_p = models.FloatField(null=True, blank=True)
    series = ArrayField(models.FloatField(), null=True, blank=True, help_text="z per slice")

    class Meta:
        ordering = ["run", "cell"]
        constraints = [UniqueConstraint(fields=["run", "cell"], name="hotspotcell_unique")]

    def __str__(self) -> str:
        return f"{self.run_id}/{self.cell} {self.hotspot_class}"


class RequestCluster(models.Model):
    """A DBSCAN cluster of requests of one run: "these 14 reports are one problem"."""

    run = models.ForeignKey(AnalysisRun, on_delete=models.CASCADE, related_name="clusters")
    label = models.PositiveIntegerField(help_text="cluster number within the run, from 1")
    size = models.PositiveIntegerField()
    request_ids = ArrayField(models.BigIntegerField())
    geom = models.MultiPolygonField(srid=4326, help_text="convex hull, buffered by eps / 2")
    centre = models.PointField(srid=4326)
    radius_m = models.FloatField(help_text="largest distance of a member from the centre")
    first_at = models.DateTimeField()
    last_at = models.DateTimeField()
    categories = ArrayField(models.CharField(max_length=64))

    class Meta:
        ordering = ["run", "label"]
        constraints = [UniqueConstraint(fields=["run", "label"], name="requestcluster_unique")]

    def __str__(self) -> str:
        return f"{self.run_id}/{self.label} ({self.size})"


class Denominator(models.Model):
    """What rates are taken against: residents, housing units... as located points."""

    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=200)
    unit = models.CharField(max_length=100, help_text="e.g. residents")
    source = models.CharField(max_length=500, blank=True)
    loaded_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.name


class DenominatorPoint(models.Model):
    denominator = models.ForeignKey(Denominator, on_delete=models.CASCADE, related_name="points")
    location = models.PointField(srid=4326)
    value = models.FloatField()

    class Meta:
        indexes = [models.Index(fields=["denominator"])]


class RequestFact(models.Model):
    """What performance reports aggregate, one narrow row per service request.

    A derived copy of geo311's tables (a request, its first status change from its events,
    the areas frozen in its routing), so that a report over millions of requests reads one
    narrow table instead of joining the events, unpacking every request's routing and
    converting every time. ``packed`` is the fixed-width record the report reads
    (``maps.sql.FACTS_FIXED`` then one boundary id per layer of the refresh mark's
    ``layers``), built once here rather than on every read. Brought up to date by
    ``maps.services.request_facts_refresh`` (a periodic job, and on demand). Ids, not foreign
    keys: bulk deletes of requests must not be blocked by it (the refresh removes the facts of
    deleted requests).
    """

    request_id = models.BigIntegerField(primary_key=True)
    department_id = models.BigIntegerField(null=True)
    category_id = models.BigIntegerField()
    status_id = models.BigIntegerField()
    requested_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True)
    expected_at = models.DateTimeField(null=True)
    first_change_at = models.DateTimeField(
        null=True, help_text="first status event whose status is not the initial one"
    )
    updated_at = models.DateTimeField(help_text="the request's, when this row was made")
    packed = models.BinaryField()

    class Meta:
        indexes = [
            models.Index(fields=["updated_at"]),
            models.Index(fields=["requested_at"]),
        ]

    def __str__(self) -> str:
        return f"facts of request {self.request_id}"


class RefreshMark(models.Model):
    """When a derived table (``request_facts``) was last brought up to date, in which time
    zone its months were counted and which layers its records hold, in order (another zone or
    another set of layers rebuilds it)."""

    name = models.CharField(max_length=50, primary_key=True)
    at = models.DateTimeField()
    time_zone = models.CharField(max_length=64, blank=True)
    layers = models.JSONField(default=list, blank=True)

    def __str__(self) -> str:
        return f"{self.name} at {self.at}"
