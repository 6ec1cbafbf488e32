"""``manage.py hotspots``: the planner report (or the hot spot cells) for a filter, in batch."""

import datetime as dt
import json
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from maps import exports, performance, reports, selectors, services
from maps.filters import RequestFilter

FORMATS = (".html", ".geojson", ".csv", ".gpkg")


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise CommandError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _list(text: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in (text or "").split(",") if v.strip())


class Command(BaseCommand):
    help = (
        "Hot spot analysis and service performance of the requests a filter selects, computed "
        "here (no worker needed) and reused from the store when already done: --out "
        "report.html writes the planner report (maps and charts, opens offline); --out "
        "cells.geojson|.csv|.gpkg the hot spot cells."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--category", help="service codes, comma-separated (default: all)")
        parser.add_argument("--department", help="department slugs, comma-separated")
        parser.add_argument("--status", help="status codes or open / closed, comma-separated")
        parser.add_argument("--from", dest="start", type=_date, help="first day (YYYY-MM-DD)")
        parser.add_argument("--to", dest="end", type=_date, help="last day (YYYY-MM-DD)")
        parser.add_argument("--out", type=Path, required=True, help=f"file: {', '.join(FORMATS)}")
        parser.add_argument(
            "--cells", default="hex", help="'hex' (default) or a boundary layer slug"
        )
        parser.add_argument("--size", type=float, help="hexagon edge in metres (default 250)")
        parser.add_argument("--band", type=float, help="distance band in metres")
        parser.add_argument("--knn", type=int, help="use the k nearest cells as neighbours")
        parser.add_argument(
            "--normalize", default="", help="'all_requests' or a denominator slug (rates)"
        )
        parser.add_argument(
            "--layer", default="wards", help="areas of the performance report (blank: none)"
        )
        parser.add_argument("--title", default="", help="the report's title")
        parser.add_argument(
            "--no-emerging", action="store_true", help="leave the emerging hot spots out"
        )
        parser.add_argument(
            "--refresh", action="store_true", help="compute again even if stored results exist"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        out: Path = options["out"]
        if out.suffix not in FORMATS:
            raise CommandError(f"--out must end in one of {', '.join(FORMATS)}, not {out.name!r}")
        request_filter = RequestFilter(
            categories=_list(options["category"]),
            departments=_list(options["department"]),
            statuses=_list(options["status"]),
            start=options["start"],
            end=options["end"],
        )
        hotspot_params: dict[str, Any] = {"cells": options["cells"]}
        for option, name in (("size", "size_m"), ("band", "band_m"), ("knn", "k")):
            if options[option] is not None:
                hotspot_params[name] = options[option]
        if options["knn"] is not None:
            hotspot_params["weights"] = "knn"
        if options["normalize"]:
            hotspot_params["normalize"] = options["normalize"]
        layer = options["layer"] or None
        try:
            if options["refresh"]:
                for kind, params in (("hotspots", hotspot_params), ("emerging", {}),
                                     ("clusters", {}), ("density", {})):  # fmt: skip
                    services.analysis_request(
                        kind=kind, request_filter=request_filter, params=params, refresh=True,
                        defer=False,
                    )  # fmt: skip
            runs = services.report_runs(
                request_filter=request_filter,
                hotspot_params=hotspot_params,
                emerging=out.suffix == ".html" and not options["no_emerging"],
                execute=True,
            )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        for run in (runs.hotspots, runs.emerging, runs.clusters, runs.density):
            if run is not None:
                state = run.status if run.status != "failed" else f"failed: {run.message}"
                self.stderr.write(f"… {run.kind} #{run.pk}: {state}")
        if runs.hotspots.status != "done":
            raise CommandError(f"the hot spot analysis failed: {runs.hotspots.message}")
        summary = runs.hotspots.result
        self.stdout.write(
            f"{request_filter.describe()}: {summary['requests']:,} requests in "
            f"{summary['cells']:,} cells; {summary['hot']:,} hot and {summary['cold']:,} cold "
            "(90% or more, FDR-corrected)"
        )
        if out.suffix != ".html":
            geojson = json.loads(selectors.hotspot_cells_geojson(run=runs.hotspots))
            if out.suffix == ".geojson":
                out.write_text(json.dumps(geojson))
            elif out.suffix == ".csv":
                out.write_text(exports.geojson_csv(geojson))
            else:
                out.write_bytes(exports.geopackage(geojson, layer="hotspot_cells"))
            self.stdout.write(f"wrote {out}")
            return
        try:
            report = performance.performance_report(
                request_filter=request_filter, layer=layer, refresh=True, detail=False
            )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        body = reports.report_html(
            request_filter=request_filter,
            performance=report,
            equity_geojson=performance.equity_geojson(report=report) if layer else {},
            hotspots=runs.hotspots,
            emerging=runs.done(runs.emerging),
            clusters=runs.done(runs.clusters),
            density=runs.done(runs.density),
            title=options["title"] or "Hot spots and service performance",
            outline_layer=layer,
        )
        out.write_text(body)
        self.stdout.write(f"wrote {out} ({len(body.encode()) / 1e6:.1f} MB)")
