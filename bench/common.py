"""What every benchmark shares: the bench database, the data folder, statistics, results files.

Nothing here imports Django at module level: ``setup()`` points DATABASE_URL at the bench
database *before* ``django.setup()``, so the development database cannot be reached by mistake.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
MANIFESTS = REPO / "bench" / "manifests"
DATA = (REPO / ".." / "shared" / "data").resolve()

DB_HOST = "127.0.0.1"
DB_PORT = "5432"
# GEO311_BENCH_DB lets two checkouts benchmark side by side without truncating each other.
DB_NAME = os.environ.get("GEO311_BENCH_DB", "geo311_bench")
DB_USER = "geo311"
DB_PASSWORD = "geo311"
DATABASE_URL = f"postgis://{DB_USER}:{DB_PASSWORD}@{DB_HOST}:{DB_PORT}/{DB_NAME}"
# libpq form, for psycopg and ogr2ogr
CONNINFO = f"host={DB_HOST} port={DB_PORT} dbname={DB_NAME} user={DB_USER} password={DB_PASSWORD}"

RESULT_KEYS = (
    "name",
    "value",
    "unit",
    "baseline",
    "baseline_value",
    "ratio",
    "goal",
    "details",
    "when",
)


class BenchError(RuntimeError):
    """A benchmark cannot run; the message says why and what to do."""


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S', time.gmtime())}Z] {msg}", file=sys.stderr, flush=True)


# --- data -----------------------------------------------------------------------------------


def data_path(*parts: str) -> Path:
    """A file under the shared data folder (``../shared/data`` from the repo root), or a clear
    error when the folder or the file is missing."""
    if not DATA.is_dir():
        raise BenchError(
            f"shared data folder not found: {DATA} (expected ../shared/data relative to the "
            f"repository root {REPO}); the benchmarks need the real NYC files there"
        )
    path = DATA.joinpath(*parts)
    if not path.exists():
        raise BenchError(f"missing shared data file: {path}")
    return path


# --- database -------------------------------------------------------------------------------


def _psql(sql: str, *, db: str = "postgres", user: str = "postgres") -> str:
    out = subprocess.run(
        [
            "psql",
            "-h",
            DB_HOST,
            "-p",
            DB_PORT,
            "-U",
            user,
            "-d",
            db,
            "-v",
            "ON_ERROR_STOP=1",
            "-Atqc",
            sql,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise BenchError(f"psql failed ({sql!r}): {out.stderr.strip()}")
    return out.stdout.strip()


def ensure_database() -> None:
    """Create ``geo311_bench`` (owner geo311) with PostGIS when it does not exist."""
    exists = _psql(f"SELECT 1 FROM pg_database WHERE datname = '{DB_NAME}'")
    if not exists:
        log(f"creating database {DB_NAME}")
        done = subprocess.run(
            ["createdb", "-h", DB_HOST, "-p", DB_PORT, "-U", "postgres", "-O", DB_USER, DB_NAME],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise BenchError(f"createdb {DB_NAME} failed: {done.stderr.strip()}")
    _psql("CREATE EXTENSION IF NOT EXISTS postgis", db=DB_NAME)


_SET_UP = False
_LOCK_CONN = None
LOCK_KEY = 3110311  # pg_advisory_lock key: one bench run at a time on the bench database


def _lock_bench_database() -> None:
    """Hold a session advisory lock on the bench database for the life of this process, so two
    bench runs (``python -m bench`` or a single module) never reset each other's layers or share
    the cores mid-measurement; the second waits for the first."""
    global _LOCK_CONN
    import psycopg

    conn = psycopg.connect(CONNINFO, autocommit=True)
    if not conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()[0]:
        holder = conn.execute(
            "SELECT a.pid, a.application_name, a.backend_start FROM pg_locks l "
            "JOIN pg_stat_activity a USING (pid) WHERE l.locktype = 'advisory' "
            "AND l.objid = %s AND l.granted",
            (LOCK_KEY,),
        ).fetchone()
        log(f"another bench run holds the bench database (backend {holder}); waiting for it")
        conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
    _LOCK_CONN = conn


def setup() -> None:
    """Point Django at the bench database, set it up, and migrate it. Idempotent."""
    global _SET_UP
    if _SET_UP:
        return
    os.chdir(REPO)
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    ensure_database()
    _lock_bench_database()
    os.environ["DATABASE_URL"] = DATABASE_URL
    os.environ["DJANGO_SETTINGS_MODULE"] = "geo311.settings"
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    name = settings.DATABASES["default"]["NAME"]
    if name != DB_NAME:  # never benchmark (and truncate!) another database
        raise BenchError(f"Django is configured for database {name!r}, not {DB_NAME!r}; refusing")
    call_command("migrate", verbosity=0, interactive=False)
    _SET_UP = True


def raw_connection(**kwargs: Any):  # type: ignore[no-untyped-def]
    """A plain psycopg 3 connection to the bench database (autocommit), outside Django."""
    import psycopg

    return psycopg.connect(CONNINFO, autocommit=True, **kwargs)


def register_geometry_dumper(conn) -> type:  # type: ignore[no-untyped-def]
    """Let ``conn`` send ``Geom(ewkb)`` as a binary ``geometry`` parameter, the way Django's
    PostGIS backend sends a GEOS point; returns the ``Geom`` class."""
    from psycopg.adapt import Dumper
    from psycopg.pq import Format
    from psycopg.types import TypeInfo

    info = TypeInfo.fetch(conn, "geometry")
    if info is None:
        raise BenchError("the bench database has no PostGIS geometry type")

    class Geom:
        __slots__ = ("ewkb",)

        def __init__(self, ewkb: bytes):
            self.ewkb = ewkb

    class GeomDumper(Dumper):
        format = Format.BINARY
        oid = info.oid

        def dump(self, obj):  # type: ignore[no-untyped-def]
            return obj.ewkb

    conn.adapters.register_dumper(Geom, GeomDumper)
    return Geom


def point_ewkb(lon: float, lat: float) -> bytes:
    import struct

    # little-endian EWKB Point with SRID flag, SRID 4326
    return struct.pack("<BIIdd", 1, 0x20000001, 4326, lon, lat)


# --- statistics -----------------------------------------------------------------------------


def latency_stats(samples: list[float] | np.ndarray, *, scale: float = 1.0, nd: int = 3) -> dict:
    """p50/p90/p99/mean/max of ``samples`` (seconds) times ``scale`` (1e3 = ms, 1e6 = µs)."""
    a = np.asarray(samples, dtype=float) * scale
    return {
        "n": int(a.size),
        "p50": round(float(np.percentile(a, 50)), nd),
        "p90": round(float(np.percentile(a, 90)), nd),
        "p99": round(float(np.percentile(a, 99)), nd),
        "mean": round(float(a.mean()), nd),
        "min": round(float(a.min()), nd),
        "max": round(float(a.max()), nd),
    }


def median(values: list[float]) -> float:
    return float(np.median(np.asarray(values, dtype=float)))


def median_run(runs: list[dict], key: str) -> dict:
    """The run whose ``key`` is the median of the runs' (the upper one of an even count)."""
    return sorted(runs, key=lambda run: run[key])[len(runs) // 2]


# --- machine --------------------------------------------------------------------------------

_MACHINE: dict | None = None


def machine_info() -> dict:
    """nproc, CPU, memory, PostgreSQL/PostGIS/GDAL/Python versions, server settings, git commit."""
    global _MACHINE
    if _MACHINE is not None:
        return _MACHINE
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    try:
        with open("/proc/cpuinfo") as fh:
            info["cpu"] = next(
                (line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), ""
            )
        with open("/proc/meminfo") as fh:
            info["mem_total"] = fh.readline().split(":", 1)[1].strip()
    except OSError:
        pass
    try:
        with raw_connection() as conn:
            row = conn.execute(
                "SELECT version(), postgis_full_version(), current_setting('shared_buffers'), "
                "current_setting('work_mem'), current_setting('jit'), "
                "current_setting('max_parallel_workers_per_gather'), "
                "current_setting('random_page_cost')"
            ).fetchone()
        (
            info["postgres"],
            info["postgis"],
            info["pg_shared_buffers"],
            info["pg_work_mem"],
            info["pg_jit"],
            info["pg_max_parallel_workers_per_gather"],
            info["pg_random_page_cost"],
        ) = row
    except Exception as exc:  # noqa: BLE001 - machine info must never break a benchmark
        info["postgres_error"] = str(exc)
    try:
        info["ogr2ogr"] = subprocess.run(
            ["ogr2ogr", "--version"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as exc:
        info["ogr2ogr"] = f"unavailable: {exc}"
    try:
        import pyogrio

        info["pyogrio_gdal"] = pyogrio.__gdal_version_string__
    except Exception:  # noqa: BLE001
        pass
    try:
        import django

        info["django"] = django.get_version()
    except Exception:  # noqa: BLE001
        pass
    git = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    )
    info["git_commit"] = git.stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        check=False,
    )
    info["git_dirty_files"] = [line[3:] for line in dirty.stdout.splitlines()]
    _MACHINE = info
    return info


# --- load on the box while a benchmark runs ------------------------------------------------

_START: tuple[float, list[int], list[float]] | None = None


def _cpu_jiffies() -> list[int]:
    try:
        with open("/proc/stat") as fh:
            return [int(x) for x in fh.readline().split()[1:]]
    except OSError:
        return []


def mark_start() -> None:
    """Called before each benchmark: what ``write_result`` measures the box's load against."""
    global _START
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = []
    _START = (time.perf_counter(), _cpu_jiffies(), load)


def load_since_start() -> dict:
    """Wall time, load averages and all-core CPU busy % since ``mark_start()``: the benchmark
    itself (client and PostgreSQL) plus anything else running on the box."""
    out: dict[str, Any] = {"loadavg_at_start": _START[2] if _START else None}
    with contextlib.suppress(OSError):
        out["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    if _START is not None:
        t0, j0, _ = _START
        j1 = _cpu_jiffies()
        out["wall_s"] = round(time.perf_counter() - t0, 1)
        if j0 and j1:
            delta = [b - a for a, b in zip(j0, j1, strict=False)]
            idle = delta[3] + (delta[4] if len(delta) > 4 else 0)  # idle + iowait
            total = sum(delta[:8])
            if total:
                out["cpu_busy_pct_all_cores"] = round(100.0 * (total - idle) / total, 1)
    return out


# --- results --------------------------------------------------------------------------------


def write_result(
    *,
    name: str,
    value: float,
    unit: str,
    baseline: str,
    baseline_value: float,
    goal: str,
    details: dict,
    ratio: float | None = None,
) -> dict:
    """Write ``bench/results/<name>.json`` (atomically) with exactly the agreed keys."""
    if ratio is None:
        ratio = value / baseline_value if baseline_value else float("nan")
    result = {
        "name": name,
        "value": value,
        "unit": unit,
        "baseline": baseline,
        "baseline_value": baseline_value,
        "ratio": round(ratio, 4),
        "goal": goal,
        "details": {**details, "machine": machine_info(), "load": load_since_start()},
        "when": dt.datetime.now(dt.UTC).astimezone().isoformat(timespec="seconds"),
    }
    assert tuple(result) == RESULT_KEYS
    RESULTS.mkdir(parents=True, exist_ok=True)
    target = RESULTS / f"{name}.json"
    tmp = target.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2, ensure_ascii=False, default=str) + "\n")
    tmp.replace(target)
    log(f"{name}: {value} {unit} vs {baseline} {baseline_value} (ratio {ratio:.3f}) -> {target}")
    return result


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gunicorn:
    """geo311 (or another WSGI ``app``) under gunicorn on the bench database, on loopback, with
    its log in ``log_path``."""

    def __init__(self, port: int, log_path: Path, args: list[str], app: str = "geo311.wsgi"):
        env = {
            **os.environ,
            "DATABASE_URL": DATABASE_URL,
            "DJANGO_SETTINGS_MODULE": "geo311.settings",
            "DJANGO_DEBUG": "false",
        }
        self.cmd = [
            str(REPO / ".venv" / "bin" / "gunicorn"),
            app,
            "-b",
            f"127.0.0.1:{port}",
            *args,
        ]
        self.log_path = log_path
        self.log = log_path.open("w")
        self.proc = subprocess.Popen(
            self.cmd, cwd=REPO, env=env, stdout=self.log, stderr=subprocess.STDOUT
        )
        self.port = port

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(
                    f"gunicorn exited with {self.proc.returncode}: "
                    f"{self.log_path.read_text()[-2000:]}"
                )
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/health")
                if conn.getresponse().status == 200:
                    conn.close()
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise BenchError(
            f"gunicorn not ready after {timeout} s: {self.log_path.read_text()[-2000:]}"
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


# --- CPU time ---------------------------------------------------------------------------------


def backend_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by the PostgreSQL backend ``pid``, read from
    /proc (the bench server runs on this machine): with the client's own process time, what an
    operation costs whatever else shares the cores; NaN when /proc cannot tell."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def django_backend_pid() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


# --- HTTP load with wrk -----------------------------------------------------------------------

# wrk's script: each thread walks the path list from its own offset; every answer's status is
# counted and, with a header given, the answers that carry it with the given value; ``done``
# prints one JSON line (latency percentiles in microseconds).
_WRK_SCRIPT = r"""
local paths = {%(paths)s}
local request_headers = {%(headers)s}
local header, header_value = %(header)s, %(header_value)s
local threads = {}
function setup(thread)
  thread:set("first", #threads * 7919)
  table.insert(threads, thread)
end
function init(args)
  counter = first or 0
  statuses = {}
  matched = 0
end
function request()
  counter = counter + 1
  return wrk.format("GET", paths[(counter %% #paths) + 1], request_headers)
end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if header and headers[header] == header_value then matched = matched + 1 end
end
function done(summary, latency, requests)
  local all, matched_all = {}, 0
  for _, t in ipairs(threads) do
    for code, n in pairs(t:get("statuses")) do
      all[tostring(code)] = (all[tostring(code)] or 0) + n
    end
    matched_all = matched_all + t:get("matched")
  end
  local parts = {}
  for code, n in pairs(all) do table.insert(parts, string.format('"%%s": %%d', code, n)) end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %%d, "duration_us": %%d, "bytes": %%d, "statuses": {%%s}, ' ..
    '"header_matched": %%d, ' ..
    '"errors": {"connect": %%d, "read": %%d, "write": %%d, "timeout": %%d}, ' ..
    '"p50": %%d, "p90": %%d, "p99": %%d, "mean": %%f, "max": %%d}\n',
    summary.requests, summary.duration, summary.bytes, table.concat(parts, ", "), matched_all,
    e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean,
    latency.max))
end
"""


def _lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def wrk_load(
    port: int,
    paths: list[str],
    *,
    seconds: float,
    connections: int,
    threads: int = 1,
    header: tuple[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> dict:
    """GET ``paths`` round-robin from ``http://127.0.0.1:port`` with wrk (Debian's ``wrk``,
    installed by ``make bench``): ``connections`` keep-alive connections on ``threads``
    threads for ``seconds``. Returns requests, req_per_s, statuses, latency_ms (p50/p90/p99,
    mean, max), socket errors and, with ``header=(name, value)``, how many answers carried it.
    Each request sends ``headers`` (default ``Accept: application/json``).

    wrk is C on an event loop: it takes a small share of the cores the server under test
    shares with it, where a Python client process costs about as much per request as the
    server's own work."""
    binary = shutil.which("wrk")
    if binary is None:
        raise BenchError("wrk is not installed: run `make bench` (its setup installs it)")
    if not paths:
        raise BenchError("wrk_load needs at least one path")
    script = _WRK_SCRIPT % {
        "paths": ", ".join(_lua_string(p) for p in paths),
        "header": _lua_string(header[0]) if header else "nil",
        "header_value": _lua_string(header[1]) if header else "nil",
        "headers": ", ".join(
            f"[{_lua_string(k)}] = {_lua_string(v)}"
            for k, v in (headers or {"Accept": "application/json"}).items()
        ),
    }
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(script)
        script_path = fh.name
    try:
        done = subprocess.run(
            [
                binary,
                f"-t{threads}",
                f"-c{connections}",
                f"-d{max(1, round(seconds))}s",
                "--timeout",
                "30s",
                "-s",
                script_path,
                f"http://127.0.0.1:{port}",
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=seconds + 120,
        )
    finally:
        os.unlink(script_path)
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRKJSON ")), None)
    if done.returncode != 0 or line is None:
        raise BenchError(f"wrk failed ({done.returncode}): {done.stderr.strip()} {done.stdout}")
    out = json.loads(line[len("WRKJSON ") :])
    duration = out["duration_us"] / 1e6
    return {
        "requests": out["requests"],
        "seconds": round(duration, 2),
        "req_per_s": round(out["requests"] / duration, 1),
        "mb_per_s": round(out["bytes"] / duration / 1e6, 1),
        "statuses": out["statuses"],
        "header_matched": out["header_matched"],
        "socket_errors": out["errors"],
        "latency_ms": {k: round(out[k] / 1e3, 3) for k in ("p50", "p90", "p99", "mean", "max")},
        "client": f"wrk -t{threads} -c{connections} (keep-alive), paths round-robin",
    }
