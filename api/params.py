"""Bounded integer parameters for paths and queries.

An id beyond 64 bits cannot reach the database (SQLite raises ``OverflowError``; PostgreSQL
refuses a value beyond its ``integer``), which was a 500: every integer a client sends in a
path or a query is bounded here, so it is refused with a 422 that names the parameter, and
the OpenAPI document says what is accepted.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query
from pydantic import Field

# the id columns are INTEGER: 32 bits on PostgreSQL (64 on SQLite), so the smaller bound
MAX_ID = 2**31 - 1
# the largest offset a list accepts (no real list gets near it; it keeps OFFSET in 64 bits)
MAX_OFFSET = 10**9

Id = Annotated[int, Path(ge=1, le=MAX_ID, description="Row id (1 to 2^31-1)")]
OptionalIdQuery = Annotated[int | None, Query(ge=1, le=MAX_ID)]
# the largest page any list returns (Settings.page_size_max is at most this; it may set less)
MAX_PAGE = 10_000

# an id inside a list parameter (?expand=1&expand=2)
IdItem = Annotated[int, Field(ge=1, le=MAX_ID)]
