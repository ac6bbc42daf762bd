"""Geohash-6 zones (the pipeline's zone_id) as cells the fleet map can draw: bounds, and the grid over a box.

A precision-6 geohash is 30 bits, longitude and latitude interleaved from the top, longitude first:
15 bits each, so every zone is a cell 360/2^15 degrees of longitude by 180/2^15 of latitude
(about 0.79 km x 0.61 km at Frankfurt). udfs/geohash.py only encodes; decoding lives here, where
only the map needs it.
"""

from __future__ import annotations

from typing import Final

from udfs.geohash import zone_id

_BASE32: Final = "0123456789bcdefghjkmnpqrstuvwxyz"
_VALUE: Final = {c: i for i, c in enumerate(_BASE32)}
ZONE_BITS: Final = 15  # per axis
LON_STEP: Final = 360.0 / (1 << ZONE_BITS)
LAT_STEP: Final = 180.0 / (1 << ZONE_BITS)

Bounds = tuple[float, float, float, float]  # (min_lon, min_lat, max_lon, max_lat)


def zone_cell(zone: str) -> tuple[int, int]:
    """(longitude cell, latitude cell), each 0 .. 2^15 - 1, of a precision-6 zone id."""
    if len(zone) != 6 or any(c not in _VALUE for c in zone):
        raise ValueError(f"zone id {zone!r}: expected 6 geohash characters")
    code = 0
    for c in zone:
        code = code << 5 | _VALUE[c]
    lon = lat = 0
    for bit in range(29, -1, -1):  # from the top: even positions are longitude bits
        value = code >> bit & 1
        if (29 - bit) % 2 == 0:
            lon = lon << 1 | value
        else:
            lat = lat << 1 | value
    return lon, lat


def zone_bounds(zone: str) -> Bounds:
    lon, lat = zone_cell(zone)
    return (-180.0 + lon * LON_STEP, -90.0 + lat * LAT_STEP, -180.0 + (lon + 1) * LON_STEP, -90.0 + (lat + 1) * LAT_STEP)


def zone_ring(zone: str) -> list[list[float]]:
    """The cell as a closed GeoJSON ring of [lon, lat], counter-clockwise."""
    west, south, east, north = zone_bounds(zone)
    return [[west, south], [east, south], [east, north], [west, north], [west, south]]


def zones_over(bounds: Bounds, limit: int) -> list[str] | None:
    """Every zone meeting the box, west to east and south to north; None if there are more than `limit`."""
    west, south, east, north = bounds
    lon_first, lon_last = int((west + 180.0) / LON_STEP), int((east + 180.0) / LON_STEP)
    lat_first, lat_last = int((south + 90.0) / LAT_STEP), int((north + 90.0) / LAT_STEP)
    last = (1 << ZONE_BITS) - 1
    lon_first, lon_last = max(0, lon_first), min(last, lon_last)
    lat_first, lat_last = max(0, lat_first), min(last, lat_last)
    if (lon_last - lon_first + 1) * (lat_last - lat_first + 1) > limit:
        return None
    # Encoding each cell's centre keeps the encoder (the pipeline's) the one authority on names.
    return [
        zone_id(-90.0 + (lat + 0.5) * LAT_STEP, -180.0 + (lon + 0.5) * LON_STEP)
        for lat in range(lat_first, lat_last + 1)
        for lon in range(lon_first, lon_last + 1)
    ]
