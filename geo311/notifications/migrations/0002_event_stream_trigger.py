"""Live updates: every new request event is announced on the PostgreSQL channel
``geo311_request_events`` (payload ``<request id>:<event id>``), delivered to listeners when
its transaction commits and never when it rolls back. A trigger rather than a call in Python,
so every way an event is written (the services, Open311 POST's single INSERT, SQL) is heard.

Imported history (events dated more than an hour ago) is not news: the WHEN clause keeps bulk
imports from queueing a notification per row.
"""

from django.db import migrations

CREATE = """
CREATE FUNCTION geo311_statusevent_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('geo311_request_events', NEW.request_id::text || ':' || NEW.id::text);
    RETURN NULL;
END
$$;
CREATE TRIGGER geo311_statusevent_notify
    AFTER INSERT ON geo311_statusevent
    FOR EACH ROW WHEN (NEW.created_at > now() - interval '1 hour')
    EXECUTE FUNCTION geo311_statusevent_notify();
"""

DROP = """
DROP TRIGGER IF EXISTS geo311_statusevent_notify ON geo311_statusevent;
DROP FUNCTION IF EXISTS geo311_statusevent_notify();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("notifications", "0001_initial"),
        ("geo311", "0004_lifecycle"),
    ]

    operations = [migrations.RunSQL(CREATE, DROP)]
