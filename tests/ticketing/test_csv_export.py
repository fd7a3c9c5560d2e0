"""The ticket timeline CSV export neutralises formula prefixes (issue 15, item 9)."""

import csv
import io
from datetime import UTC, datetime

import pytest

from faultloop import csvsafe
from ticketing.models import TicketEvent
from ticketing.service import timeline_csv


@pytest.mark.parametrize("actor", ["=HYPERLINK(\"http://x\",\"y\")", "+1+1", "-1+1", "@SUM(A1)", "\tx", "\rx"])
def test_a_cell_that_would_be_a_formula_is_text(actor):
    event = TicketEvent(id=1, ticket_id=7, at=datetime(2026, 1, 1, tzinfo=UTC), actor=actor, action="note",
                        from_state=None, to_state=None, detail={"text": "hi"})  # fmt: skip
    row = list(csv.DictReader(io.StringIO(timeline_csv([event]))))[0]
    assert row["actor"] == "'" + actor
    assert row["detail"] == '{"text": "hi"}' and row["ticket_id"] == "7"


def test_restore_is_the_inverse_and_plain_text_is_untouched():
    for value in ("=1", "+x", "-", "@a", "plain", "'quoted", "", "1-2"):
        assert csvsafe.restore(csvsafe.neutralize(value)) == value
    assert csvsafe.neutralize("plain") == "plain" and csvsafe.neutralize(5) == 5
