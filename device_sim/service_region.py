"""Where simulated vehicles may be: the service area (or a disc), with the margin GPS noise needs.

Vehicles never leave the area on their own (`device_sim.vehicle_physics` turns them round at its
edge), so every geofence exit downstream is one a scenario injected. `ServiceRegion.state` answers
"safely inside / outside / near the boundary" for a true position, fast enough to ask per step.
"""

from __future__ import annotations

import math
from typing import Any, Final

from udfs.geofence import ServiceArea

M_PER_DEG_LAT: Final = 111_320.0
MARGIN_M: Final = 12.0  # true positions keep this far from the area's boundary (> 9 m of noise + rounding)

DEFAULT_AREA: Any = object()  # sentinel: the Frankfurt area when the spec is centred on Frankfurt


class ServiceRegion:
    """Where vehicles may be: "safely inside" means the square of ±`MARGIN_M` around the point is in
    the area, so any reported position (true ± 9 m) is too; "safely outside" the same for outside.

    A service area is pre-cut into cells: a cell whose margin-grown square is entirely in (or out of)
    the area answers without a point-in-polygon test (no ring vertex in it and its four corners agree
    — edges are straight, so nothing can cut through it unnoticed, short of a sliver narrower than the
    cell, which a service area does not have). Mixed cells test the point's square the same way.
    Without a service area, the region is the disc of `radius_km` around `center`.
    """

    _CELL_M = 250.0

    def __init__(self, area: ServiceArea | None, center: tuple[float, float], radius_km: float, lon_m: float):
        self.area = area
        self.center = center
        self.radius_m = radius_km * 1000
        self.dlat = MARGIN_M / M_PER_DEG_LAT
        self.dlon = MARGIN_M / lon_m
        self.lon_m = lon_m
        if area is None:
            self.bbox = (
                center[1] - self.radius_m / lon_m, center[0] - self.radius_m / M_PER_DEG_LAT,
                center[1] + self.radius_m / lon_m, center[0] + self.radius_m / M_PER_DEG_LAT,
            )
            return
        self.vertices = [(lat, lon) for p in area.polygons for ring in (p.exterior, *p.holes) for lon, lat in ring]
        boxes = [p.bbox for p in area.polygons]
        self.bbox = (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))
        self.cell_lat = self._CELL_M / M_PER_DEG_LAT
        self.cell_lon = self._CELL_M / lon_m
        self.rows = int((self.bbox[3] - self.bbox[1]) / self.cell_lat) + 1
        self.cols = int((self.bbox[2] - self.bbox[0]) / self.cell_lon) + 1
        self.cells: list[int] = []  # 1 inside, -1 outside, 0 mixed
        for row in range(self.rows):
            for col in range(self.cols):
                lat0 = self.bbox[1] + row * self.cell_lat
                lon0 = self.bbox[0] + col * self.cell_lon
                self.cells.append(self._square_state(lat0 - self.dlat, lon0 - self.dlon, lat0 + self.cell_lat + self.dlat, lon0 + self.cell_lon + self.dlon))
        min_lon, min_lat, max_lon, max_lat = self.bbox
        self._grid = (
            min_lat - self.dlat, min_lon - self.dlon, max_lat + self.dlat, max_lon + self.dlon,
            min_lat, min_lon, self.cell_lat, self.cell_lon, self.rows, self.cols, self.cells,
        )

    def _square_state(self, lat0: float, lon0: float, lat1: float, lon1: float) -> int:
        if any(lat0 <= la <= lat1 and lon0 <= lo <= lon1 for la, lo in self.vertices):
            return 0
        corners = {self.area.contains(la, lo) for la in (lat0, lat1) for lo in (lon0, lon1)}
        return 0 if len(corners) == 2 else (1 if corners.pop() else -1)

    def state(self, lat: float, lon: float) -> int:
        """1 safely inside, -1 safely outside, 0 near the boundary."""
        if self.area is None:
            north = (lat - self.center[0]) * M_PER_DEG_LAT
            east = (lon - self.center[1]) * self.lon_m
            distance = math.hypot(north, east)
            return 1 if distance <= self.radius_m - 1.5 * MARGIN_M else -1 if distance >= self.radius_m + 1.5 * MARGIN_M else 0
        lo_lat, lo_lon, hi_lat, hi_lon, min_lat, min_lon, cell_lat, cell_lon, rows, cols, cells = self._grid
        if not (lo_lat < lat < hi_lat and lo_lon < lon < hi_lon):
            return -1
        row = int((lat - min_lat) / cell_lat)
        col = int((lon - min_lon) / cell_lon)
        if 0 <= row < rows and 0 <= col < cols:
            cell = cells[row * cols + col]
            if cell:
                return cell
        return self._square_state(lat - self.dlat, lon - self.dlon, lat + self.dlat, lon + self.dlon)

    def contains(self, lat: float, lon: float) -> bool:
        if self.area is None:
            return math.hypot((lat - self.center[0]) * M_PER_DEG_LAT, (lon - self.center[1]) * self.lon_m) <= self.radius_m
        return self.area.contains(lat, lon)
