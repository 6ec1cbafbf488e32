from django import forms

from boundaries.models import LayerKind


class BoundaryUploadForm(forms.Form):
    file = forms.FileField(
        help_text="A zipped shapefile (.zip), GeoPackage (.gpkg), GeoJSON or KML file"
    )
    layer = forms.SlugField(help_text="Existing or new layer slug, e.g. wards")
    layer_name = forms.CharField(required=False, help_text="Display name, for a new layer")
    kind = forms.ChoiceField(choices=LayerKind.choices, initial=LayerKind.OTHER)
    code_field = forms.CharField(required=False)
    name_field = forms.CharField(required=False)
    source_layer = forms.CharField(required=False, help_text="Layer inside a GeoPackage or KML")
    srid = forms.IntegerField(required=False, help_text="EPSG code, when the file has no CRS")
    exclude = forms.CharField(
        required=False, help_text="Codes to leave out, comma-separated (e.g. OUT)"
    )
    merge_duplicates = forms.BooleanField(
        required=False, help_text="Join features that share a code into one boundary"
    )
    effective_from = forms.DateField(required=False)
    activate = forms.BooleanField(required=False)
    dry_run = forms.BooleanField(
        required=False, initial=True, help_text="Preview what would change; write nothing"
    )
