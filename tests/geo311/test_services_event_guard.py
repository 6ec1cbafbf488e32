"""The one function that writes request events refuses to run outside a transaction: whatever
it queues (notifications) must commit with the change it reports."""

import pytest

from geo311.models import EventKind, ServiceRequest
from geo311.services import Actor, request_event_record


@pytest.mark.django_db(transaction=True)  # no test-wide transaction around this one
def test_request_event_record_refuses_to_run_outside_a_transaction():
    with pytest.raises(RuntimeError, match="inside the transaction"):
        request_event_record(request=ServiceRequest(), kind=EventKind.NOTE, actor=Actor())
