"""Performance reports: times to acknowledge and to close, SLA compliance, backlog, open work
and equity on requests whose history is known, and the request facts they read."""

import datetime as dt

import pytest
from django.contrib.gis.geos import Point
from django.core.exceptions import ValidationError
from django.utils import timezone

from boundaries.models import Boundary
from geo311.models import Department, ServiceCategory, ServiceRequest, Status, StatusEvent
from maps import performance, services
from maps.filters import RequestFilter
from maps.models import RequestFact

pytestmark = pytest.mark.django_db

UTC = dt.UTC
NOW = dt.datetime(2020, 6, 1, 12, 0, tzinfo=UTC)
SPRING = RequestFilter(categories=("POTHOLE", "SIDEWALK"), start=dt.date(2020, 3, 1),
                       end=dt.date(2020, 4, 30))  # fmt: skip


def at(month: int, day: int, hour: int = 15) -> dt.datetime:
    return dt.datetime(2020, month, day, hour, tzinfo=UTC)


def made(
    code: str,
    created: dt.datetime,
    *,
    ward: str,
    ack_after_h: float | None = None,
    closed_after_d: float | None = None,
    sla_d: float | None = None,
) -> ServiceRequest:
    """A request routed to ``ward`` with its status history: created (submitted), maybe
    acknowledged, maybe completed."""
    statuses = {s.code: s for s in Status.objects.all()}
    closed = created + dt.timedelta(days=closed_after_d) if closed_after_d is not None else None
    request = ServiceRequest.objects.create(
        category=ServiceCategory.objects.get(service_code=code),
        department=Department.objects.get(slug="transportation"),
        status=statuses["completed" if closed else "submitted"],
        location=Point(-87.63, 41.88, srid=4326),
        routing={"boundaries": [{"layer": "wards", "code": ward, "name": "", "version": 1}]},
        requested_at=created,
        updated_at=closed or created,
        closed_at=closed,
        expected_at=created + dt.timedelta(days=sla_d) if sla_d is not None else None,
    )
    StatusEvent.objects.create(request=request, status=statuses["submitted"], created_at=created)
    if ack_after_h is not None:
        StatusEvent.objects.create(
            request=request,
            status=statuses["acknowledged"],
            created_at=created + dt.timedelta(hours=ack_after_h),
        )
    if closed:
        StatusEvent.objects.create(request=request, status=statuses["completed"], created_at=closed)
    return request


@pytest.fixture
def spring(chicago_requests):  # type: ignore[no-untyped-def]
    """Seven potholes and sidewalks of spring 2020 (and two from before) with known times."""
    return {
        "before_open": made("POTHOLE", at(1, 20), ward="1"),
        "before_closed": made("POTHOLE", at(2, 10), ward="1", closed_after_d=34),
        "r1": made("POTHOLE", at(3, 1), ward="1", ack_after_h=5, closed_after_d=2, sla_d=3),
        "r2": made("POTHOLE", at(3, 5), ward="1", closed_after_d=10, sla_d=3),
        "r3": made("POTHOLE", at(3, 10), ward="2", ack_after_h=1, sla_d=2),
        "r4": made("POTHOLE", at(4, 2), ward="2"),
        "r5": made("POTHOLE", at(4, 15), ward="42", ack_after_h=24, closed_after_d=4),
        "r6": made("SIDEWALK", at(4, 20), ward="42", closed_after_d=1),
    }


def report(**kwargs):  # type: ignore[no-untyped-def]
    return performance.performance_report(
        request_filter=SPRING, layer="wards", now=NOW, refresh=True, **kwargs
    )


def test_times_to_acknowledge_and_close_for_the_city(spring):
    city = report()["city"]
    assert city == {
        "requests": 6,
        "closed": 4,
        "acknowledged": 5,
        "acknowledged_by_closing": 2,  # r2 and r6 went straight to completed
        "unacknowledged": 1,  # r4 never changed
        "ack_median_h": 24.0,  # of 1, 5, 24, 24, 240 hours
        "ack_p90_h": 153.6,
        "close_median_d": 3.0,  # of 1, 2, 4, 10 days
        "close_p90_d": 8.2,
        "with_sla": 3,
        "sla_met": 1,  # r1
        "sla_missed": 2,  # r2 closed late, r3 still open past its time
        "sla_pending": 0,
        "sla_compliance_pct": 33.3,
    }


def test_groupings_by_department_category_area_and_month(spring):
    result = report()
    assert [(r["category"], r["requests"]) for r in result["by_category"]] == [
        ("POTHOLE", 5),
        ("SIDEWALK", 1),
    ]
    assert [(r["department"], r["requests"]) for r in result["by_department"]] == [
        ("transportation", 6)
    ]
    assert [(r["area"], r["requests"], r["close_median_d"]) for r in result["by_area"]] == [
        ("1", 2, 6.0),
        ("2", 2, None),
        ("42", 2, 2.5),
    ]
    assert [(r["month"], r["requests"]) for r in result["by_month"]] == [
        ("2020-03", 3),
        ("2020-04", 3),
    ]
    detail = {(r["category"], r["area"], r["month"]): r for r in result["detail"]}
    assert detail[("POTHOLE", "1", "2020-03")]["close_median_d"] == 6.0
    assert detail[("SIDEWALK", "42", "2020-04")]["acknowledged_by_closing"] == 1
    assert sum(r["requests"] for r in result["detail"]) == 6
    assert report(detail=False)["detail"] == []


def test_backlog_counts_what_is_open_at_each_month_end(spring):
    backlog = report()["backlog"]
    by_month: dict[str, int] = {}
    for row in backlog:
        by_month[row["month"]] = by_month.get(row["month"], 0) + row["open_at_month_end"]
    # March: the January request still open, and r3. April: those and r4.
    assert by_month == {"2020-03": 2, "2020-04": 3}
    ward_2 = [r for r in backlog if r["area"] == "2"]
    assert [(r["month"], r["open_at_month_end"]) for r in ward_2] == [
        ("2020-03", 1),
        ("2020-04", 2),
    ]


def test_open_work_is_aged_from_now(spring):
    open_work = report()["open_work"]
    total = next(r for r in open_work if r["total"])
    assert total["open"] == 3
    assert total["age_days"] == {"0-2": 0, "3-7": 0, "8-30": 0, "31-90": 2, "over 90": 1}
    assert total["overdue"] == 1  # r3
    assert total["unacknowledged"] == 2  # the January request and r4
    assert total["oldest_d"] == pytest.approx((NOW - at(1, 20)).total_seconds() / 86400, abs=0.1)
    ward_2 = next(r for r in open_work if r["area"] == "2")
    assert (ward_2["open"], ward_2["overdue"]) == (2, 1)


def test_equity_against_the_city_median_and_on_the_map(spring):
    result = report()
    equity = {r["area"]: r for r in result["equity"]}
    assert equity["1"]["ratio_to_city"] == 2.0  # 6 days against 3
    assert equity["1"]["difference_d"] == 3.0
    assert equity["42"]["ratio_to_city"] == pytest.approx(0.833, abs=1e-3)
    assert equity["2"]["close_median_d"] is None
    assert all(r["few_requests"] for r in equity.values())
    features = {f["id"]: f for f in performance.equity_geojson(report=result)["features"]}
    wards = Boundary.objects.filter(version__layer__slug="wards", version__number=1)
    assert set(features) == set(wards.values_list("code", flat=True))  # the map routed with
    assert features["1"]["properties"]["ratio_to_city"] == 2.0
    assert features["1"]["geometry"]["type"] in ("Polygon", "MultiPolygon")
    assert features["5"]["properties"]["close_median_d"] is None


def test_imported_history_is_acknowledged_by_its_closing(chicago_requests):
    history = RequestFilter(categories=("SAN_CODE",), start=dt.date(2011, 1, 1),
                            end=dt.date(2014, 12, 31))  # fmt: skip
    city = performance.performance_report(request_filter=history, layer=None, refresh=True)["city"]
    assert city["requests"] > 8000
    # Imported rows record only creation and closing: each closing is the first change.
    assert city["acknowledged"] == city["acknowledged_by_closing"] == city["closed"]
    assert city["unacknowledged"] == city["requests"] - city["closed"]
    assert city["ack_median_h"] == pytest.approx(city["close_median_d"] * 24)


def test_facts_follow_new_changed_and_deleted_requests(spring):
    services.request_facts_refresh()
    r4 = spring["r4"]
    fact = RequestFact.objects.get(request_id=r4.pk)
    assert fact.first_change_at is None
    # r4 is acknowledged now: the change moves its updated_at, as every change does.
    StatusEvent.objects.create(
        request=r4, status=Status.objects.get(code="acknowledged"), created_at=at(5, 1)
    )
    ServiceRequest.objects.filter(pk=r4.pk).update(updated_at=timezone.now())
    new = made("POTHOLE", at(4, 25), ward="2", closed_after_d=3)
    spring["r6"].delete()
    done = services.request_facts_refresh()
    assert done["written"] >= 2
    assert done["pruned"] == 1
    assert RequestFact.objects.get(request_id=r4.pk).first_change_at == at(5, 1)
    assert RequestFact.objects.filter(request_id=new.pk).exists()
    assert not RequestFact.objects.filter(request_id=spring["r6"].pk).exists()
    city = report()["city"]
    assert (city["requests"], city["unacknowledged"]) == (6, 0)
    # Nothing changed since: nothing is written again.
    assert services.request_facts_refresh() == {"written": 0, "pruned": 0, "rebuilt": 0}


def test_an_unknown_layer_is_refused(spring):
    with pytest.raises(ValidationError) as caught:
        performance.performance_report(request_filter=SPRING, layer="parishes")
    assert caught.value.message_dict == {"layer": ["no boundary layer 'parishes'"]}


def test_no_request_gives_an_empty_report(chicago_requests):
    empty = RequestFilter(categories=("CAVE_IN",))
    result = performance.performance_report(request_filter=empty, layer="wards", refresh=True)
    assert result["city"]["requests"] == 0
    assert result["city"]["close_median_d"] is None
    assert result["by_month"] == result["backlog"] == result["equity"] == []
