import datetime as dt
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from boundaries.models import LayerKind
from importers.boundaries import SUPPORTED, BoundaryImportError, import_boundary_file


class Command(BaseCommand):
    help = (
        "Import a boundary file as a new version of a layer. The first version of a new layer "
        f"goes live at once; later versions are staged until --activate. Formats: {SUPPORTED}."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--layer", required=True, help="layer slug, e.g. wards")
        parser.add_argument("--code-field", help="field holding each boundary's code")
        parser.add_argument("--name-field", help="field holding each boundary's name")
        parser.add_argument("--source-layer", help="layer inside a GeoPackage or KML to read")
        parser.add_argument(
            "--srid", type=int, help="EPSG code of the file's CRS when it has none (or a wrong one)"
        )
        parser.add_argument(
            "--exclude",
            action="append",
            default=[],
            metavar="CODE",
            help="leave out features with this code (repeatable), e.g. OUT",
        )
        parser.add_argument(
            "--merge-duplicates",
            action="store_true",
            help="join features that share a code into one boundary (default: refuse the file)",
        )
        parser.add_argument(
            "--effective-from", type=dt.date.fromisoformat, help="date the version takes effect"
        )
        parser.add_argument("--activate", action="store_true", help="make this version active")
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="write nothing; report what would change against the active version",
        )
        parser.add_argument(
            "--force", action="store_true", help="import even if this exact file was imported"
        )
        parser.add_argument("--layer-name", default="", help="display name of a new layer")
        parser.add_argument(
            "--kind", default=LayerKind.OTHER, choices=LayerKind.values, help="kind of a new layer"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            report = import_boundary_file(
                options["file"],
                layer=options["layer"],
                code_field=options["code_field"],
                name_field=options["name_field"],
                source_layer=options["source_layer"],
                srid=options["srid"],
                exclude_codes=frozenset(options["exclude"]),
                merge_duplicates=options["merge_duplicates"],
                effective_from=options["effective_from"],
                activate=options["activate"],
                dry_run=options["dry_run"],
                force=options["force"],
                layer_name=options["layer_name"],
                layer_kind=options["kind"],
                progress=lambda msg: self.stderr.write(f"… {msg}"),
            )
        except BoundaryImportError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(report.summary())
