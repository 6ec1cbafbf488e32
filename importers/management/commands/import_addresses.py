from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from importers.addresses import AddressImportError, import_address_file


class Command(BaseCommand):
    help = (
        "Import a city's address points (CSV, or any GDAL point file such as a GeoPackage or "
        "shapefile) for address lookup. A file already loaded is skipped unless --replace."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--address-field", help="field holding the street address")
        parser.add_argument("--id-field", help="field holding the city's address id")
        parser.add_argument("--zip-field", help="field holding the ZIP code")
        parser.add_argument("--lat-field", help="latitude field (degrees, EPSG:4326)")
        parser.add_argument("--lon-field", help="longitude field (degrees, EPSG:4326)")
        parser.add_argument("--x-field", help="projected x field (with --y-field and --srid)")
        parser.add_argument("--y-field", help="projected y field (with --x-field and --srid)")
        parser.add_argument(
            "--srid", type=int, help="EPSG code of --x-field/--y-field, or of a file with no CRS"
        )
        parser.add_argument("--source", help="source name stored with the points (default: file)")
        parser.add_argument(
            "--replace", action="store_true", help="replace the points loaded from this source"
        )
        parser.add_argument("--dry-run", action="store_true", help="check the file, write nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            report = import_address_file(
                options["file"],
                address_field=options["address_field"],
                id_field=options["id_field"],
                zip_field=options["zip_field"],
                lat_field=options["lat_field"],
                lon_field=options["lon_field"],
                x_field=options["x_field"],
                y_field=options["y_field"],
                srid=options["srid"],
                source_name=options["source"],
                replace=options["replace"],
                dry_run=options["dry_run"],
                progress=lambda msg: self.stderr.write(f"… {msg}"),
            )
        except AddressImportError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(report.summary())
