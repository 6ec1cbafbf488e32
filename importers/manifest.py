"""Load a set of boundary files described by one JSON manifest, e.g. a city's wards, districts
and zones. Each entry takes the options of ``import_boundary_file``; file paths are relative to
``root`` (default: the manifest's folder).

    {"layers": [{"file": "wards.gpkg", "layer": "wards", "kind": "ward", "name": "Wards",
                 "code_field": "ward", "exclude": ["OUT"], "merge_duplicates": false,
                 "srid": null, "source_layer": null, "effective_from": "2003-05-01"}]}
"""

import datetime as dt
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from django.db import connections

from .boundaries import BoundaryImportError, ImportReport, Progress, import_boundary_file

_KNOWN = {
    "file",
    "layer",
    "kind",
    "name",
    "code_field",
    "name_field",
    "exclude",
    "merge_duplicates",
    "srid",
    "source_layer",
    "effective_from",
    "activate",
}


def read_manifest(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise BoundaryImportError(f"cannot read manifest {path}: {exc}") from exc
    entries = data.get("layers") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise BoundaryImportError(f"manifest {path} has no 'layers' list")
    for n, entry in enumerate(entries, start=1):
        missing = {"file", "layer"} - set(entry)
        unknown = set(entry) - _KNOWN
        if missing or unknown:
            raise BoundaryImportError(
                f"manifest {path}, entry {n}: "
                + "; ".join(
                    ([f"missing {', '.join(sorted(missing))}"] if missing else [])
                    + ([f"unknown key(s) {', '.join(sorted(unknown))}"] if unknown else [])
                )
            )
    return entries


def import_manifest(
    path: Path | str,
    *,
    root: Path | None = None,
    dry_run: bool = False,
    jobs: int = 1,
    progress: Progress | None = None,
) -> list[ImportReport]:
    """Import every layer of a manifest, each file in its own transaction.

    Entries of one layer are imported in manifest order (version 2 after version 1). With
    ``jobs`` > 1, different layers are imported at the same time on their own database
    connections: most of an import is PostGIS work (ST_Subdivide, index inserts), which then
    runs on several cores. Reports come back in manifest order.
    """
    path = Path(path)
    base = root or path.parent
    entries = read_manifest(path)
    by_layer: dict[str, list[int]] = {}
    for n, entry in enumerate(entries):
        by_layer.setdefault(entry["layer"], []).append(n)
    reports: dict[int, ImportReport] = {}

    def import_layer(indexes: list[int]) -> None:
        for n in indexes:
            reports[n] = _import_entry(entries[n], base=base, dry_run=dry_run, progress=progress)

    if jobs <= 1 or len(by_layer) == 1:
        import_layer(list(range(len(entries))))
    else:
        # Largest layers first, so the last one to finish is a small one.
        groups = sorted(
            by_layer.values(),
            key=lambda idx: -sum(_size(base / entries[n]["file"]) for n in idx),
        )
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            for future in [pool.submit(_in_own_connection, import_layer, g) for g in groups]:
                future.result()
    return [reports[n] for n in range(len(entries))]


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _in_own_connection(work: Callable[[list[int]], None], indexes: list[int]) -> None:
    # Django gives each thread its own connection; close it so the pool leaves none open.
    try:
        work(indexes)
    finally:
        connections.close_all()


def _import_entry(
    entry: dict[str, Any], *, base: Path, dry_run: bool, progress: Progress | None
) -> ImportReport:
    effective = entry.get("effective_from")
    return import_boundary_file(
        base / entry["file"],
        layer=entry["layer"],
        layer_kind=entry.get("kind", "other"),
        layer_name=entry.get("name", ""),
        code_field=entry.get("code_field"),
        name_field=entry.get("name_field"),
        exclude_codes=frozenset(entry.get("exclude", [])),
        merge_duplicates=bool(entry.get("merge_duplicates", False)),
        srid=entry.get("srid"),
        source_layer=entry.get("source_layer"),
        effective_from=dt.date.fromisoformat(effective) if effective else None,
        activate=bool(entry.get("activate", False)),
        dry_run=dry_run,
        progress=progress,
    )
