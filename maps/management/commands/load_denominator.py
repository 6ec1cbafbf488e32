from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from maps.denominators import DenominatorFileError, read_denominator_points
from maps.services import denominator_load


class Command(BaseCommand):
    help = (
        "Load denominator points (e.g. residents per tax lot) that hot spot analyses can take "
        "rates against (--normalize SLUG). Replaces the points of the same slug."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "file", type=Path, help="CSV with lat/lon columns, or a GDAL point file"
        )
        parser.add_argument("--slug", required=True)
        parser.add_argument("--name", required=True)
        parser.add_argument("--unit", required=True, help="e.g. residents")
        parser.add_argument("--value-field", required=True)
        parser.add_argument("--lat-field", default="latitude")
        parser.add_argument("--lon-field", default="longitude")
        parser.add_argument("--dry-run", action="store_true", help="read the file, write nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"]
        try:
            read = read_denominator_points(
                path,
                value_field=options["value_field"],
                lat_field=options["lat_field"],
                lon_field=options["lon_field"],
            )
        except DenominatorFileError as exc:
            raise CommandError(str(exc)) from exc
        for number, reason in list(read.rejected.items())[:20]:
            self.stderr.write(f"row {number}: {reason}")
        self.stdout.write(
            f"{len(read.points):,} points ({read.total:,.0f} {options['unit']}), "
            f"{len(read.rejected):,} rows left out"
        )
        if options["dry_run"]:
            return
        denominator = denominator_load(
            slug=options["slug"],
            name=options["name"],
            unit=options["unit"],
            source=path.name,
            points=read.points,
        )
        self.stdout.write(f"loaded denominator {denominator.slug}")
