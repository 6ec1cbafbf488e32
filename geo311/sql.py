"""SQL the ORM cannot say for service requests and address points: bulk loads by COPY and
set-based routing of whole files.

Every statement is parameterised. Table names are written out (geo311_servicerequest,
boundaries_boundarypart, ...: Django's names for the models) so each statement reads as it runs.
"""

from collections.abc import Iterable

from django.db import connection


def copy_address_points(*, rows: Iterable[tuple[str, str, str, str, str, str]]) -> int:
    """Bulk-write (address_id, address, normalized, zipcode, EWKB hex point in 4326, source).

    COPY instead of INSERTs: a city's address layer is hundreds of thousands of points.
    """
    count = 0
    with connection.cursor() as cursor:
        raw = cursor.cursor  # the psycopg 3 cursor under Django's wrapper
        with raw.copy(
            "COPY geo311_addresspoint (address_id, address, normalized, zipcode, location, source)"
            " FROM STDIN"
        ) as copy:
            for row in rows:
                copy.write_row(row)
                count += 1
    return count
