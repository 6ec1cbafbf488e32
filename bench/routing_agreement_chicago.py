"""routing_agreement_chicago: how often the routing frozen on the imported Chicago requests agrees
with the areas the city itself assigned (the file's ``Ward``, ``Community_Area`` and
``Police_District`` columns).

The Chicago file is imported as import_requests_chicago leaves it (same source name; imported
here when it is not in the database: the demo layers and city config first), then
``importers.requests.routing_agreement`` compares, in one SQL statement, each imported request's
stored boundaries with the file's labels, per layer:

- ``wards`` (the 2003–2015 ward map, the active version) vs ``Ward``;
- ``community-areas`` vs ``Community_Area``;
- ``police-districts`` vs ``Police_District``.

Value = ward agreement (%). The data's README documents what to expect (about 96% wards, 98%
community areas, 97% police districts: the rest are the city's own geocoding quirks, so 100% is
not the target); the goal is to land within a point of each. The same numbers are recomputed in
Python from the stored routing (an independent check of the SQL), and the disagreements are
described: requests in no boundary of the layer, and the most common (label, routed) pairs.
"""

from __future__ import annotations

import csv
import json
import time
from collections import Counter

from .common import BenchError, data_path, log, write_result
from .import_requests_chicago import CSV_PATH, MAPPING, SOURCE, ensure_city

NAME = "routing_agreement_chicago"
LABELS = {
    "wards": "Ward",
    "community-areas": "Community_Area",
    "police-districts": "Police_District",
}
ID_COLUMN = "Service_Request_Number"
# The data README's documented agreement rates (%), and how close counts as meeting them.
EXPECTED = {"wards": 96.0, "community-areas": 98.0, "police-districts": 97.0}
TOLERANCE = 1.0


def _code(text: str) -> str:
    text = text.strip()
    return text[:-2] if text.endswith(".0") else text


def ensure_import(path) -> dict:  # type: ignore[no-untyped-def]
    """The file's requests in the database under SOURCE (imported now when they are not)."""
    from django.db import connection

    from importers.requests import import_request_file, read_mapping

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM geo311_servicerequest WHERE source = %s", [SOURCE])
        have = cursor.fetchone()[0]
    if have:
        return {"imported_now": False, "requests_from_source": have}
    setup = ensure_city()
    t0 = time.perf_counter()
    report = import_request_file(path, mapping=read_mapping(MAPPING), source_name=SOURCE)
    log(report.summary().splitlines()[0])
    if not report.imported:
        raise BenchError(
            f"nothing of {path.name} was imported under {SOURCE}: {dict(report.reasons())} "
            "(another source holds its ids? run import_requests_chicago, which starts from "
            "empty request tables)"
        )
    return {
        "imported_now": True,
        "requests_from_source": report.imported,
        "import_s": round(time.perf_counter() - t0, 2),
        **setup,
    }


def python_check(path) -> dict:  # type: ignore[no-untyped-def]
    """Agreement recomputed from the stored routing, with the disagreements described."""
    from django.db import connection

    labels: dict[str, dict[str, str]] = {}
    with path.open(encoding="utf-8-sig", newline="") as fh:
        for row in csv.DictReader(fh):
            srn = row[ID_COLUMN].strip()
            if srn and srn not in labels:  # the importer keeps a repeated id's first row
                labels[srn] = {layer: _code(row[col]) for layer, col in LABELS.items()}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT public_id, routing->'boundaries' FROM geo311_servicerequest WHERE source = %s",
            [SOURCE],
        )
        stored = cursor.fetchall()
    out: dict[str, dict] = {}
    for layer in LABELS:
        compared = agreed = unrouted = several = 0
        pairs: Counter[tuple[str, str]] = Counter()
        for public_id, stored_boundaries in stored:
            # Django's psycopg loaders hand jsonb over as text.
            boundaries = (
                json.loads(stored_boundaries)
                if isinstance(stored_boundaries, str)
                else stored_boundaries
            )
            label = labels.get(public_id, {}).get(layer, "")
            if not label:
                continue
            codes = sorted({b["code"] for b in boundaries or [] if b["layer"] == layer})
            compared += 1
            if label in codes:
                agreed += 1
                continue
            if not codes:
                unrouted += 1
            several += len(codes) > 1
            pairs[(label, "|".join(codes) or "(none)")] += 1
        out[layer] = {
            "compared": compared,
            "agreed": agreed,
            "agreement_pct": round(100.0 * agreed / compared, 3) if compared else 0.0,
            "disagree": compared - agreed,
            "in_no_boundary": unrouted,
            "in_several_boundaries": several,
            "top_disagreements": [
                {"label": a, "routed": b, "requests": n} for (a, b), n in pairs.most_common(10)
            ],
        }
    return out


def run() -> dict:
    from importers.requests import routing_agreement

    path = data_path(*CSV_PATH)
    loaded = ensure_import(path)
    t0 = time.perf_counter()
    result = routing_agreement(path, labels=LABELS, id_column=ID_COLUMN, source=SOURCE)
    seconds = time.perf_counter() - t0
    per_layer = {
        a.layer: {
            "column": a.column,
            "compared": a.compared,
            "agreed": a.agreed,
            "unrouted": a.unrouted,
            "agreement_pct": round(100.0 * a.rate, 3),
            "expected_pct": EXPECTED[a.layer],
        }
        for a in result
    }
    if not per_layer["wards"]["compared"]:
        raise BenchError(f"no request from {SOURCE} was compared: is the import there?")
    check = python_check(path)
    same = all(
        (check[layer]["compared"], check[layer]["agreed"])
        == (per_layer[layer]["compared"], per_layer[layer]["agreed"])
        for layer in LABELS
    )
    for layer, a in per_layer.items():
        log(f"{layer}: {a['agreement_pct']}% of {a['compared']:,} (expected ≈ {EXPECTED[layer]}%)")
    ward = per_layer["wards"]["agreement_pct"]
    met = all(
        abs(per_layer[layer]["agreement_pct"] - EXPECTED[layer]) <= TOLERANCE for layer in LABELS
    )
    details = {
        "per_layer": per_layer,
        "python_recount": check,
        "sql_and_python_agree": same,
        "agreement_s": round(seconds, 3),
        "source": SOURCE,
        **loaded,
        "notes": [
            "importers.requests.routing_agreement over the requests imported from the file; "
            "codes compared as text after '20.0' -> '20'; only imported rows with a label count.",
            "wards = the 2003-2015 ward map (the demo's active version; the 2015 map is staged).",
            f"goal: each layer within {TOLERANCE:g} point of the data README's documented rate.",
        ],
        "goal_met": bool(met and same),
    }
    return write_result(
        name=NAME,
        value=ward,
        unit="% wards agree",
        baseline="documented ward agreement (data README)",
        baseline_value=EXPECTED["wards"],
        ratio=ward / EXPECTED["wards"],
        goal="wards ≈ 96%, community areas ≈ 98%, police districts ≈ 97% (± 1 point)",
        details=details,
    )
