"""Load a set of boundary files described by one JSON manifest, e.g. a city's wards, districts
and zones. Each entry takes the options of ``import_boundary_file``; file paths are relative to
``root`` (default: the manifest's folder).

    {"layers": [{"file": "wards.gpkg", "layer": "wards", "kind": "ward", "name": "Wards",
                 "code_field": "ward", "exclude": ["OUT"], "merge_duplicates": false,
                 "srid": null, "source_layer": null, "effective_from": "2003-05-01"}]}
"""

import datetime as dt
import json
from pathlib import Path
from typing import Any

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
    progress: Progress | None = None,
) -> list[ImportReport]:
    """Import every layer of a manifest, each file in its own transaction, in manifest order."""
    path = Path(path)
    base = root or path.parent
    reports = []
    for entry in read_manifest(path):
        effective = entry.get("effective_from")
        reports.append(
            import_boundary_file(
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
        )
    return reports
