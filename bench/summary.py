"""Rewrite bench/results/SUMMARY.md from every ``bench/results/*.json`` present."""

from __future__ import annotations

import json
import re

from .common import RESULTS, log


def _fmt(value: object) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "–"
        return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def _postgis_version(full: object) -> str:
    found = re.search(r'POSTGIS="([^ "]+)', str(full or ""))
    geos = re.search(r'GEOS="([^ "-]+)', str(full or ""))
    return (found.group(1) if found else "?") + (f" (GEOS {geos.group(1)})" if geos else "")


def _highlights(r: dict) -> list[str]:
    d = r.get("details") if isinstance(r.get("details"), dict) else {}
    name = r["name"]
    out: list[str] = []
    if name == "boundary_import_nyc":
        out.append(f"runs (s): ours {d.get('ours_runs_s')}, ogr2ogr {d.get('ogr2ogr_runs_s')}")
        if d.get("ours_jobs_runs_s"):
            out.append(
                f"with jobs={d.get('ours_jobs')}: {d.get('ours_jobs_runs_s')} s, median "
                f"{d.get('ours_jobs_median_s')} s, ratio {d.get('ours_jobs_ratio')}"
            )
        if d.get("what_if_runs_s"):
            out.append(
                f"with GEO311_SUBDIVIDE_MAX_VERTICES={d.get('what_if_max_vertices')}: "
                f"{d.get('what_if_runs_s')} s, median {d.get('what_if_median_s')} s, "
                f"ratio {d.get('what_if_ratio')}"
            )
        if "profile" in d:
            top = d["profile"].get("top_by_tottime", [])[:5]
            out.append(
                "heaviest own-time functions (cProfile): "
                + "; ".join(f"{t['function']} {t['tottime_s']} s" for t in top)
            )
    elif name == "subdivide_piece_size":
        out.append(
            f"fastest piece size: **{d.get('best_max_vertices')}** max vertices "
            f"(project setting: {d.get('current_setting')})"
        )
        out.append(
            "| max_vertices | parts | p50 µs | p99 µs | ids-only p50 µs | ids-only p99 µs "
            "| server plan p50 µs | server exec p50 µs | server exec p99 µs "
            "| subdivide + analyze s |"
        )
        out.append("|---|---|---|---|---|---|---|---|---|---|")
        for size, s in d.get("per_size", {}).items():
            plan = s.get("server_planning_us", {})
            exe = s.get("server_execution_us", {})
            out.append(
                f"| {size} | {s.get('parts')} | {s['selector_query']['p50']} | "
                f"{s['selector_query']['p99']} | {s['ids_only']['p50']} | "
                f"{s['ids_only']['p99']} | {plan.get('p50')} | {exe.get('p50')} | "
                f"{exe.get('p99')} | {s.get('rebuild_s_median')} |"
            )
        out.append("")
        out.append(
            f"fastest by server execution time alone: "
            f"{d.get('best_max_vertices_server_execution')}; by the ids-only query: "
            f"{d.get('best_max_vertices_ids_only')}"
        )
    elif name == "lookup_latency":
        api, sql = d.get("api_ms", {}), d.get("sql_ms", {})
        out.append(
            f"API p50/p99 {api.get('p50')}/{api.get('p99')} ms; bare SQL p50/p99 "
            f"{sql.get('p50')}/{sql.get('p99')} ms; "
            f"non-200: {d.get('non_200')}, missing layers: {d.get('points_missing_layers')}"
        )
        if "sql_ids_only_ms" in d:
            s = d["sql_ids_only_ms"]
            out.append(f"bare SQL without outlines (ids only) p50/p99 {s['p50']}/{s['p99']} ms")
    elif name == "nyc_points_agreement":
        out.append("| layer | agreement % | no match | multiple matches | disagree |")
        out.append("|---|---|---|---|---|")
        for layer, a in d.get("per_layer", {}).items():
            out.append(
                f"| {layer} | {a['agreement_pct']} | {a['no_match']} | "
                f"{a['multiple_matches']} | {a['disagree']} |"
            )
    return out


def write_summary() -> None:
    files = sorted(RESULTS.glob("*.json"))
    lines = [
        "# Benchmark results",
        "",
        "Written by `python -m bench` (medians of the runs; ratio = ours / baseline, below 1 is "
        "faster). Full data in the JSON file of each benchmark.",
        "",
        "| benchmark | value | baseline | baseline value | ratio | goal | goal met | when |",
        "|---|---|---|---|---|---|---|---|",
    ]
    results = []
    for path in files:
        try:
            r = json.loads(path.read_text())
            r["name"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
            log(f"skipping unreadable {path}: {exc}")
            continue
        results.append(r)
        details = r.get("details") if isinstance(r.get("details"), dict) else {}
        met = details.get("goal_met")
        unit = r.get("unit", "")
        lines.append(
            f"| `{r['name']}` | {_fmt(r.get('value'))} {unit} | {r.get('baseline', '–')} | "
            f"{_fmt(r.get('baseline_value'))} {unit} | {_fmt(r.get('ratio'))} | "
            f"{r.get('goal', '–')} | {'yes' if met else 'no' if met is not None else '–'} | "
            f"{r.get('when', '–')} |"
        )
    if results:
        m = next(
            (
                r["details"]["machine"]
                for r in results
                if isinstance(r.get("details"), dict) and "machine" in r["details"]
            ),
            {},
        )
        lines += [
            "",
            f"Machine: {m.get('nproc')} cores ({m.get('cpu')}), {m.get('mem_total')}; "
            f"{str(m.get('postgres', '')).split(' on ')[0]}; "
            f"PostGIS {_postgis_version(m.get('postgis'))}; "
            f"{m.get('ogr2ogr')}; pyogrio GDAL {m.get('pyogrio_gdal')}; "
            f"commit {str(m.get('git_commit', ''))[:10]}.",
        ]
    for r in results:
        extra = _highlights(r)
        if extra:
            lines += ["", f"## {r['name']}", ""] + extra
            note = (r.get("details") or {}).get("notes")
            if note:
                lines += [""] + [f"- {n}" for n in note]
    (RESULTS / "SUMMARY.md").write_text("\n".join(lines) + "\n")
    log(f"wrote {RESULTS / 'SUMMARY.md'} ({len(results)} results)")
