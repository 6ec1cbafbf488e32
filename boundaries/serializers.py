from rest_framework import serializers
from rest_framework_gis.serializers import GeoFeatureModelSerializer

from .models import Boundary, Layer, LayerVersion


class LookupInputSerializer(serializers.Serializer):
    lat = serializers.FloatField(min_value=-90, max_value=90)
    lon = serializers.FloatField(min_value=-180, max_value=180)
    layer = serializers.CharField(required=False, help_text="comma-separated layer slugs")

    def validate_layer(self, value: str) -> list[str]:
        slugs = [s.strip() for s in value.split(",") if s.strip()]
        known = set(Layer.objects.filter(slug__in=slugs).values_list("slug", flat=True))
        unknown = [s for s in slugs if s not in known]
        if unknown:
            raise serializers.ValidationError(f"unknown layer(s): {', '.join(unknown)}")
        return slugs


class LayerBoundariesInputSerializer(serializers.Serializer):
    simplify = serializers.FloatField(
        required=False,
        default=0.0,
        min_value=0.0,
        max_value=10_000.0,
        help_text="tolerance in metres",
    )
    version = serializers.IntegerField(required=False, min_value=1)
    bbox = serializers.CharField(required=False, help_text="west,south,east,north in degrees")

    def validate_bbox(self, value: str) -> tuple[float, float, float, float]:
        try:
            west, south, east, north = (float(v) for v in value.split(","))
        except ValueError as exc:
            raise serializers.ValidationError(
                "bbox must be four numbers: west,south,east,north"
            ) from exc
        if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
            raise serializers.ValidationError("bbox must have west < east and south < north")
        return west, south, east, north


class VersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = LayerVersion
        fields = [
            "number",
            "status",
            "source_name",
            "source_layer",
            "checksum",
            "source_crs",
            "code_field",
            "name_field",
            "imported_at",
            "effective_from",
            "effective_to",
            "activated_at",
            "feature_count",
            "vertex_count",
        ]


class LayerSerializer(serializers.ModelSerializer):
    active_version = serializers.SerializerMethodField()
    version_count = serializers.IntegerField(read_only=True)
    url = serializers.HyperlinkedIdentityField(
        view_name="boundaries:layer-detail", lookup_field="slug"
    )
    boundaries_url = serializers.HyperlinkedIdentityField(
        view_name="boundaries:layer-boundaries", lookup_field="slug"
    )

    class Meta:
        model = Layer
        fields = [
            "slug",
            "name",
            "kind",
            "description",
            "url",
            "boundaries_url",
            "version_count",
            "active_version",
        ]

    def get_active_version(self, layer: Layer) -> dict | None:
        active = getattr(layer, "active_versions", None)
        if active is None:
            active = list(layer.versions.filter(status="active"))
        return VersionSerializer(active[0]).data if active else None


class LayerDetailSerializer(LayerSerializer):
    versions = VersionSerializer(many=True, read_only=True)

    class Meta(LayerSerializer.Meta):
        fields = [*LayerSerializer.Meta.fields, "versions"]


class BoundaryFeatureSerializer(GeoFeatureModelSerializer):
    layer = serializers.CharField(source="version.layer.slug")
    version = serializers.IntegerField(source="version.number")
    version_status = serializers.CharField(source="version.status")

    class Meta:
        model = Boundary
        geo_field = "geom"
        fields = ["id", "code", "name", "layer", "version", "version_status", "attributes"]


class LookupBoundarySerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="boundaries:boundary-detail")

    class Meta:
        model = Boundary
        fields = ["id", "code", "name", "url"]
