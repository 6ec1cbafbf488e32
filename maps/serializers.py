"""Input and output serializers of the analysis API."""

from typing import Any

from rest_framework import serializers

from .filters import RequestFilter
from .models import AnalysisRun


def _codes(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


class FilterInputSerializer(serializers.Serializer):
    """Which requests: ``category``, ``department`` and ``status`` are comma lists (service
    codes, department slugs, status codes or open/closed); ``from`` and ``to`` are dates in the
    city's time zone, both included."""

    category = serializers.CharField(required=False, allow_blank=True, help_text="service codes")
    department = serializers.CharField(required=False, allow_blank=True, help_text="slugs")
    status = serializers.CharField(
        required=False, allow_blank=True, help_text="status codes, or open / closed"
    )
    from_ = serializers.DateField(required=False, allow_null=True, help_text="YYYY-MM-DD")
    to = serializers.DateField(required=False, allow_null=True, help_text="YYYY-MM-DD")

    def get_fields(self) -> dict[str, Any]:
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")  # a Python keyword, a fine query parameter
        return fields

    def validate(self, attrs: dict) -> dict:
        start, end = attrs.get("from"), attrs.get("to")
        if start and end and end < start:
            raise serializers.ValidationError({"to": f"{end} is before from={start}"})
        return attrs

    def request_filter(self) -> RequestFilter:
        data = self.validated_data
        return RequestFilter(
            categories=_codes(data.get("category") or ""),
            departments=_codes(data.get("department") or ""),
            statuses=_codes(data.get("status") or ""),
            start=data.get("from"),
            end=data.get("to"),
        )


class HotspotInputSerializer(FilterInputSerializer):
    cells = serializers.CharField(
        required=False, help_text="'hex' (default) or a boundary layer slug, e.g. wards"
    )
    size = serializers.FloatField(required=False, help_text="hexagon edge, metres")
    weights = serializers.ChoiceField(["distance", "knn"], required=False)
    band = serializers.FloatField(required=False, help_text="distance band, metres")
    k = serializers.IntegerField(required=False, min_value=1, max_value=100)
    normalize = serializers.CharField(
        required=False, allow_blank=True, help_text="'all_requests' or a denominator slug"
    )
    within = serializers.BooleanField(
        required=False, allow_null=True, default=None,
        help_text="analyse empty cells inside the city outline (default: when there is one)",
    )  # fmt: skip
    refresh = serializers.BooleanField(required=False, default=False)

    NAMES = {"size": "size_m", "band": "band_m"}
    PARAMS = ("cells", "size", "weights", "band", "k", "normalize", "within")

    def analysis_params(self) -> dict:
        data = self.validated_data
        return {self.NAMES.get(n, n): data[n] for n in self.PARAMS if data.get(n) is not None}


class EmergingInputSerializer(HotspotInputSerializer):
    slice = serializers.ChoiceField(["month", "week"], required=False)
    trend_alpha = serializers.FloatField(required=False, min_value=0.001, max_value=0.2)

    PARAMS = ("size", "weights", "band", "k", "within", "slice", "trend_alpha")


class ClusterInputSerializer(FilterInputSerializer):
    eps = serializers.FloatField(required=False, help_text="metres")
    min_points = serializers.IntegerField(required=False, min_value=2, max_value=1000)
    refresh = serializers.BooleanField(required=False, default=False)

    def analysis_params(self) -> dict:
        data = self.validated_data
        return {
            name: data[key]
            for key, name in (("eps", "eps_m"), ("min_points", "min_points"))
            if data.get(key) is not None
        }


class DensityInputSerializer(FilterInputSerializer):
    bandwidth = serializers.FloatField(required=False, help_text="metres")
    cell = serializers.FloatField(required=False, help_text="grid cell, metres")
    refresh = serializers.BooleanField(required=False, default=False)

    def analysis_params(self) -> dict:
        data = self.validated_data
        return {
            name: data[key]
            for key, name in (("bandwidth", "bandwidth_m"), ("cell", "cell_m"))
            if data.get(key) is not None
        }


class PerformanceInputSerializer(FilterInputSerializer):
    layer = serializers.CharField(
        required=False, default="wards", allow_blank=True,
        help_text="areas by this boundary layer (blank: no areas)",
    )  # fmt: skip
    detail = serializers.BooleanField(required=False, default=True)
    refresh = serializers.BooleanField(
        required=False, default=False, help_text="bring the request facts up to date first"
    )


class PerformanceCsvInputSerializer(PerformanceInputSerializer):
    table = serializers.ChoiceField(
        ["detail", "by_department", "by_category", "by_area", "by_month", "backlog",
         "open_work", "equity"],
        required=False, default="detail",
    )  # fmt: skip


class RunSerializer(serializers.ModelSerializer):
    """A run: what was asked, how far it is, its summary, and where its results are."""

    links = serializers.SerializerMethodField()
    result = serializers.SerializerMethodField()

    class Meta:
        model = AnalysisRun
        fields = [
            "id",
            "kind",
            "status",
            "progress",
            "message",
            "filter",
            "params",
            "data_version",
            "created_at",
            "started_at",
            "finished_at",
            "error",
            "result",
            "links",
        ]

    def get_result(self, run: AnalysisRun) -> dict:
        # The density grid is served by its own link; the summary stays small.
        return {k: v for k, v in (run.result or {}).items() if k != "values"}

    def get_links(self, run: AnalysisRun) -> dict[str, str]:
        base = f"/api/v1/analysis/runs/{run.pk}"
        links = {"self": f"{base}/"}
        if run.kind in ("hotspots", "emerging"):
            links.update(
                {f"cells_{fmt}": f"{base}/cells.{fmt}" for fmt in ("geojson", "csv", "gpkg")}
            )
        elif run.kind == "clusters":
            links.update(
                {f"clusters_{fmt}": f"{base}/clusters.{fmt}" for fmt in ("geojson", "csv", "gpkg")}
            )
        elif run.kind == "density":
            links.update({"png": f"{base}/density.png", "grid": f"{base}/density.json"})
        return links


class RunListSerializer(RunSerializer):
    class Meta(RunSerializer.Meta):
        fields = ["id", "kind", "status", "progress", "filter", "created_at", "finished_at",
                  "links"]  # fmt: skip
