"""Admin upload of boundary files: the same import function the command calls."""

import tempfile
from pathlib import Path

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import URLPattern, path

from boundaries.admin import LayerAdmin
from boundaries.models import Layer

from .boundaries import BoundaryImportError, import_boundary_file
from .forms import BoundaryUploadForm


class ImportingLayerAdmin(LayerAdmin):
    change_list_template = "admin/boundaries/layer/change_list_import.html"

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.import_view)
        return [
            path("import/", view, name="boundaries_layer_import"),
            *super().get_urls(),
        ]

    def import_view(self, request: HttpRequest) -> HttpResponse:
        if not request.user.has_perm("boundaries.add_layerversion"):
            messages.error(request, "You may not import boundaries.")
            form = BoundaryUploadForm()
            report = None
        elif request.method == "POST":
            form = BoundaryUploadForm(request.POST, request.FILES)
            report = None
            if form.is_valid():
                data = form.cleaned_data
                upload = data["file"]
                with tempfile.TemporaryDirectory() as tmp:
                    target = Path(tmp) / Path(upload.name).name
                    with target.open("wb") as fh:
                        for chunk in upload.chunks():
                            fh.write(chunk)
                    try:
                        report = import_boundary_file(
                            target,
                            layer=data["layer"],
                            layer_name=data["layer_name"],
                            layer_kind=data["kind"],
                            code_field=data["code_field"] or None,
                            name_field=data["name_field"] or None,
                            source_layer=data["source_layer"] or None,
                            srid=data["srid"],
                            exclude_codes=frozenset(
                                c.strip() for c in data["exclude"].split(",") if c.strip()
                            ),
                            merge_duplicates=data["merge_duplicates"],
                            effective_from=data["effective_from"],
                            activate=data["activate"],
                            dry_run=data["dry_run"],
                            source_name=upload.name,
                        )
                    except BoundaryImportError as exc:
                        form.add_error("file", str(exc))
        else:
            form = BoundaryUploadForm()
            report = None
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Import a boundary file",
            "form": form,
            "report": report,
        }
        return render(request, "admin/boundaries/layer/import.html", context)


admin.site.unregister(Layer)
admin.site.register(Layer, ImportingLayerAdmin)
