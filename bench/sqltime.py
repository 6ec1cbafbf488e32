"""Time lookup queries as bare SQL through psycopg, point by point."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from .common import point_ewkb, raw_connection, register_geometry_dumper
from .nyc import LookupSQL, SamplePoint


@dataclass
class Timed:
    seconds: list[float] = field(default_factory=list)
    answers: list[frozenset] = field(default_factory=list)  # boundary ids per point


class SqlVariants:
    """One autocommit psycopg connection per query variant; ``run(point)`` times each variant
    once (execute + fetchall) for that point.

    ``prepare[name]`` (default True) makes psycopg use a named prepared statement; False sends
    the query unprepared with its parameters, so the server plans it every time, as it does for
    Django's client-side-bound queries.

    ``plan_cache_mode[name]`` (default ``force_custom_plan``) is set on the connection. With
    PostgreSQL's default (``auto``) a prepared lookup may switch after 5 runs to a *generic*
    plan, which for this query walks every boundary and probes the GiST index once per boundary
    (~30 ms instead of < 1 ms on the NYC layers; see lookup_latency's ``sql_generic_plan``).
    Forcing custom plans keeps the per-point plan Django gets (its client-side-bound queries are
    never prepared) while still saving the parse.
    """

    def __init__(
        self,
        variants: dict[str, LookupSQL],
        prepare: dict[str, bool] | None = None,
        plan_cache_mode: dict[str, str] | None = None,
    ):
        self.variants = variants
        self.prepare = {name: (prepare or {}).get(name, True) for name in variants}
        self.plan_cache_mode = {
            name: (plan_cache_mode or {}).get(name, "force_custom_plan") for name in variants
        }
        self.conns, self.cursors, self.geoms = {}, {}, {}
        for name in variants:
            conn = raw_connection()
            mode = self.plan_cache_mode[name]
            if mode not in ("auto", "force_custom_plan", "force_generic_plan"):
                raise ValueError(f"unknown plan_cache_mode {mode!r}")
            conn.execute(f"SET plan_cache_mode = {mode}")
            self.conns[name] = conn
            self.geoms[name] = register_geometry_dumper(conn)
            self.cursors[name] = conn.cursor()

    def run(self, p: SamplePoint) -> dict[str, tuple[float, frozenset]]:
        ewkb = point_ewkb(p.lon, p.lat)
        out = {}
        for name, q in self.variants.items():
            cur = self.cursors[name]
            params = q.bind(self.geoms[name](ewkb))
            t0 = time.perf_counter()
            cur.execute(q.sql, params, prepare=self.prepare[name])
            rows = cur.fetchall()
            out[name] = (time.perf_counter() - t0, frozenset(r[0] for r in rows))
        return out

    def close(self) -> None:
        for conn in self.conns.values():
            conn.close()


def time_queries(
    variants: dict[str, LookupSQL],
    points: Sequence[SamplePoint],
    *,
    prepare: dict[str, bool] | None = None,
    plan_cache_mode: dict[str, str] | None = None,
    warmup: Sequence[SamplePoint] = (),
) -> dict[str, Timed]:
    """Every variant for every point, variants interleaved point by point (so background load
    hits them alike); the ``warmup`` points run first, untimed."""
    runner = SqlVariants(variants, prepare, plan_cache_mode)
    out = {name: Timed() for name in variants}
    try:
        for p in warmup:
            runner.run(p)
        for p in points:
            for name, (dt, answer) in runner.run(p).items():
                out[name].seconds.append(dt)
                out[name].answers.append(answer)
    finally:
        runner.close()
    return out


def server_times(
    lookup: LookupSQL, points: Sequence[SamplePoint], *, warmup: Sequence[SamplePoint] = ()
) -> tuple[list[float], list[float]]:
    """Planning and execution time (seconds) PostgreSQL reports for ``lookup`` at each point:
    ``EXPLAIN (ANALYZE, TIMING OFF, SUMMARY ON)``, custom plans, no client or network in it."""
    conn = raw_connection()
    try:
        geom = register_geometry_dumper(conn)
        conn.execute("SET plan_cache_mode = force_custom_plan")
        sql = "EXPLAIN (ANALYZE, TIMING OFF, SUMMARY ON, FORMAT JSON) " + lookup.sql
        planning, execution = [], []
        for i, p in enumerate([*warmup, *points]):
            plan = conn.execute(sql, lookup.bind(geom(point_ewkb(p.lon, p.lat)))).fetchone()[0]
            if i >= len(warmup):
                planning.append(plan[0]["Planning Time"] / 1e3)
                execution.append(plan[0]["Execution Time"] / 1e3)
        return planning, execution
    finally:
        conn.close()
