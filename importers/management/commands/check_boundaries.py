from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from boundaries import selectors
from boundaries.models import Layer


class Command(BaseCommand):
    help = (
        "Topology report for a layer: overlaps between boundaries and gaps enclosed by the layer, "
        "larger than a tolerance, with their areas and locations. Exits 1 when it finds any."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("layer", help="layer slug")
        parser.add_argument(
            "--layer-version",
            type=int,
            dest="version_number",
            help="version number (default: the active one)",
        )
        parser.add_argument(
            "--tolerance",
            type=float,
            default=settings.GEO311_TOPOLOGY_TOLERANCE_M2,
            help="ignore overlaps and gaps smaller than this many square metres",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        layer = Layer.objects.filter(slug=options["layer"]).first()
        if layer is None:
            known = ", ".join(Layer.objects.values_list("slug", flat=True)) or "none yet"
            raise CommandError(f"no layer '{options['layer']}' (layers: {known})")
        if options["version_number"]:
            version = layer.versions.filter(number=options["version_number"]).first()
        else:
            version = selectors.layer_active_version(layer=layer)
        if version is None:
            raise CommandError(f"layer '{layer.slug}' has no such version")
        tolerance = options["tolerance"]
        problems = selectors.version_topology(version=version, tolerance_m2=tolerance)
        overlaps = [p for p in problems if p.kind == "overlap"]
        gaps = [p for p in problems if p.kind == "gap"]
        self.stdout.write(
            f"{layer.slug} v{version.number}: {len(overlaps)} overlap(s), {len(gaps)} gap(s) "
            f"above {tolerance:g} m²"
        )
        for p in problems:
            what = f"overlap {p.codes[0]} / {p.codes[1]}" if p.kind == "overlap" else "gap"
            self.stdout.write(f"  {what}: {p.area_m2:,.1f} m² at {p.lat:.6f}, {p.lon:.6f}")
        if problems:
            raise SystemExit(1)
