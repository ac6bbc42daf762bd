"""Whose data a GDPR erasure removes: one trip, or one vehicle (optionally within a time range).
One value that every store turns into its own predicate, so each layer erases the same rows."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

# What the simulator and the devices send as trip ids; anything else is refused rather than quoted
# into a predicate (the Delta and SQLite predicates are built as text).
_TRIP_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class ErasureSubject:
    """Exactly one of `trip_id` or `vehicle_id`. A range (`since_ms` inclusive, `until_ms`
    exclusive, event time) narrows either; without one a vehicle's data is erased whole."""

    trip_id: str | None = None
    vehicle_id: int | None = None
    since_ms: int | None = None
    until_ms: int | None = None

    def __post_init__(self) -> None:
        if (self.trip_id is None) == (self.vehicle_id is None):
            raise ValueError("erase one trip (trip_id) or one vehicle (vehicle_id), not both or neither")
        if self.trip_id is not None and not _TRIP_ID.fullmatch(self.trip_id):
            raise ValueError(f"trip_id {self.trip_id!r}: 1-128 characters of letters, digits and _ . : -")
        if self.vehicle_id is not None and (isinstance(self.vehicle_id, bool) or not isinstance(self.vehicle_id, int)):
            raise ValueError(f"vehicle_id {self.vehicle_id!r} is not an integer")
        if self.since_ms is not None and self.until_ms is not None and self.since_ms >= self.until_ms:
            raise ValueError(f"empty range: since {_iso(self.since_ms)} is not before until {_iso(self.until_ms)}")

    def describe(self) -> str:
        who = f"trip {self.trip_id}" if self.trip_id is not None else f"vehicle {self.vehicle_id}"
        if self.since_ms is None and self.until_ms is None:
            return who
        since = _iso(self.since_ms) if self.since_ms is not None else "the beginning"
        until = _iso(self.until_ms) if self.until_ms is not None else "now"
        return f"{who} from {since} until {until}"

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    def sql_where(self, time_column: str, *, vehicle_column: str = "vehicle_id", trip_column: str = "trip_id") -> tuple[str, list[str | int]]:
        """(`… AND …` with ? placeholders, parameters): for SQLite and DuckDB."""
        terms: list[str] = []
        params: list[str | int] = []
        if self.trip_id is not None:
            terms.append(f"{trip_column} = ?")
            params.append(self.trip_id)
        elif self.vehicle_id is not None:
            terms.append(f"{vehicle_column} = ?")
            params.append(self.vehicle_id)
        else:  # __post_init__ refuses this; a predicate without its subject would erase everyone
            raise ValueError("erase one trip (trip_id) or one vehicle (vehicle_id), not neither")
        if self.since_ms is not None:
            terms.append(f"{time_column} >= ?")
            params.append(self.since_ms)
        if self.until_ms is not None:
            terms.append(f"{time_column} < ?")
            params.append(self.until_ms)
        return " AND ".join(terms), params

    def literal_where(self, time_column: str) -> str:
        """The same predicate with literals, for Delta's delete (it takes text). Safe to inline:
        a validated trip id and integers."""
        sql, params = self.sql_where(time_column)
        pieces = sql.split("?")
        out = pieces[0]
        for value, rest in zip(params, pieces[1:]):
            out += (f"'{value}'" if isinstance(value, str) else str(int(value))) + rest
        return out
