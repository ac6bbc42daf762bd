"""The vehicle registry the simulator's fleet belongs to: vehicle_id → vehicle_type.

Published to the compacted `vehicle-registry` topic (key = vehicle_id, value = JSON), which the
pipeline reads as broadcast state; a JSON-lines file of the same records works too.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

VEHICLE_TYPES = ("scooter", "e-bike")


def registry_records(vehicle_ids: list[int], seed: int = 42, share_of_scooters: float = 0.7) -> Iterator[dict]:
    rng = random.Random(seed)
    for vehicle_id in vehicle_ids:
        yield {"vehicle_id": vehicle_id, "vehicle_type": "scooter" if rng.random() < share_of_scooters else "e-bike"}
