"""Geofences: is a vehicle inside its service area?

A service area is one or more polygons in GeoJSON order, (lon, lat), treated as planar in degrees
(no antimeridian crossing). `contains()` runs for every telemetry event (50,000/s at peak), so each
polygon is indexed once, when it is built:

- a bounding box rejects most far-away points with four comparisons;
- the box is cut into horizontal bands and each band lists the edges whose latitude range meets it,
  so a point is tested against a handful of edges, not all of them;
- each edge is an even-odd ray-casting test (a ray towards +lon, half-open in latitude so a ray
  through a vertex counts it once), decided by the x-range of the edge when it can be and otherwise
  by the sign of an orientation determinant: in floats with a proven error bound (Shewchuk's
  orient2d filter), exactly with `fractions.Fraction` in the rare case the float sign is not
  certain. No epsilon anywhere: the answer is the exact answer for the given float coordinates.

Boundary rule: a point exactly on an edge or a vertex of a polygon's exterior ring is inside the
polygon, and so is a point exactly on an edge or a vertex of one of its holes. In set terms the
polygon is its closed exterior minus the open interiors of its holes. Parity is kept per ring, so
the rule holds as stated even if a hole touches the exterior or strays outside it (topology is not
validated). A service area contains a point when any of its polygons does. Rings may be given in
either winding order; it does not change the answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import orjson

Position = tuple[float, float]  # (lon, lat)
Ring = tuple[Position, ...]
# A polygon edge as Polygon's index keeps it: (y1, y2, min x, max x, x1, x2, ring bit), y1 <= y2.
Edge = tuple[float, float, float, float, float, float, int]

DEFAULT_SERVICE_AREA = Path(__file__).parent / "data" / "service_area_frankfurt.geojson"

# orient2d's float filter (Shewchuk, "Adaptive Precision Floating-Point Arithmetic and Fast Robust
# Geometric Predicates", 1997): with eps = 2**-53, the computed determinant has the exact sign when
# |det| > (3 + 16 eps) eps (|detleft| + |detright|). The absolute term covers products that
# underflow (coordinates within ~1e-150 degrees of each other), whose error is absolute, not relative.
_EPS = 2.0**-53
_ERRBOUND = (3.0 + 16.0 * _EPS) * _EPS
_UNDERFLOW = 1e-300


def _orientation_exact(x1: float, y1: float, x2: float, y2: float, x: float, y: float) -> int:
    """Sign of (x1 - x)(y2 - y) - (y1 - y)(x2 - x), exactly: > 0 when (x, y) is left of (x1, y1) → (x2, y2)."""
    # A float difference is zero exactly when its operands are equal, so a zero factor is exact.
    if (x1 == x or y2 == y) and (y1 == y or x2 == x):
        return 0
    fx, fy = Fraction(x), Fraction(y)
    det = (Fraction(x1) - fx) * (Fraction(y2) - fy) - (Fraction(y1) - fy) * (Fraction(x2) - fx)
    return (det > 0) - (det < 0)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_ring(raw: Any, where: str) -> Ring:
    """The ring as a tuple of (lon, lat) floats, or ValueError saying what is wrong and where."""
    if not isinstance(raw, (list, tuple)):
        raise ValueError(f"{where}: a ring must be an array of [lon, lat] positions, got {type(raw).__name__}")
    if len(raw) < 4:
        raise ValueError(f"{where}: a ring needs at least 4 positions (closed: first == last), got {len(raw)}")
    ring = []
    for i, position in enumerate(raw):
        if not isinstance(position, (list, tuple)) or len(position) < 2:
            raise ValueError(f"{where}, position {i}: expected [lon, lat], got {position!r}")
        lon, lat = position[0], position[1]
        if not (_is_number(lon) and _is_number(lat)):
            raise ValueError(f"{where}, position {i}: coordinates must be numbers, got {position!r}")
        try:
            lon, lat = float(lon), float(lat)
        except OverflowError:
            lon = lat = float("nan")
        if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
            raise ValueError(
                f"{where}, position {i}: coordinates out of range (need finite lon in [-180, 180] "
                f"and lat in [-90, 90]), got {position!r}"
            )
        ring.append((lon, lat))
    if ring[0] != ring[-1]:
        raise ValueError(f"{where}: ring is not closed: first position {list(ring[0])} != last position {list(ring[-1])}")
    if len(set(ring)) < 3:
        raise ValueError(f"{where}: a ring needs at least 3 distinct positions, got {len(set(ring))}")
    return tuple(ring)


@dataclass(frozen=True)
class Polygon:
    """A polygon with holes; rings are closed tuples of (lon, lat) in either winding order.

    `bbox` is (min_lon, min_lat, max_lon, max_lat) of the exterior ring. On the boundary of the
    exterior or of a hole counts as inside (see the module docstring).
    """

    exterior: Ring
    holes: tuple[Ring, ...] = ()
    bbox: tuple[float, float, float, float] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        exterior = _check_ring(self.exterior, "exterior ring")
        holes = tuple(_check_ring(hole, f"hole {i}") for i, hole in enumerate(self.holes))
        lons = [lon for lon, _ in exterior]
        lats = [lat for _, lat in exterior]
        min_x, min_y, max_x, max_y = min(lons), min(lats), max(lons), max(lats)
        object.__setattr__(self, "exterior", exterior)
        object.__setattr__(self, "holes", holes)
        object.__setattr__(self, "bbox", (min_x, min_y, max_x, max_y))

        # Edges as (y1, y2, min x, max x, x1, x2, ring bit), stored bottom-up (y1 <= y2); bit 0 is
        # the exterior, bit i the hole i-1.
        edges: list[Edge] = []
        for index, ring in enumerate((exterior, *holes)):
            bit = 1 << index
            for (ax, ay), (bx, by) in zip(ring, ring[1:]):
                if (ax, ay) == (bx, by):
                    continue
                if ay > by:
                    ax, ay, bx, by = bx, by, ax, ay
                edges.append((ay, by, min(ax, bx), max(ax, bx), ax, bx, bit))

        # Equal-height latitude bands over the bounding box. `t -> band` is monotone and the same
        # arithmetic is used here and in contains(), so a point's band holds every edge whose
        # latitude range contains the point's latitude; there is no rounding to get wrong.
        bands_n = max(1, len(edges))
        span = max_y - min_y
        scale = bands_n / span if span > 0 else 0.0
        if not scale < float("inf"):
            bands_n, scale = 1, 0.0

        def band(y: float) -> int:
            t = (y - min_y) * scale
            return 0 if t < 0 else (int(t) if t < bands_n else bands_n - 1)

        bands: list[list[Edge]] = [[] for _ in range(bands_n)]
        for edge in edges:
            for k in range(band(edge[0]), band(edge[1]) + 1):
                bands[k].append(edge)
        # One attribute for contains(): a single lookup and unpack per call.
        object.__setattr__(
            self, "_index", (min_x, min_y, max_x, max_y, scale, bands_n, tuple(map(tuple, bands)))
        )

    def contains(self, lat: float, lon: float) -> bool:
        """True if (lat, lon) is inside the exterior ring and not inside any hole; boundaries count as inside."""
        min_x, min_y, max_x, max_y, scale, bands_n, bands = self._index  # type: ignore[attr-defined]
        if not (min_y <= lat <= max_y and min_x <= lon <= max_x):
            return False  # also NaN
        t = (lat - min_y) * scale
        parity = boundary = 0
        for y1, y2, x_lo, x_hi, x1, x2, bit in bands[int(t) if t < bands_n else bands_n - 1]:
            if lat < y1 or lat > y2:
                continue
            if lon < x_lo:  # the edge is entirely east of the point: the ray crosses it
                if lat < y2:
                    parity ^= bit
            elif lon <= x_hi:
                left = (x1 - lon) * (y2 - lat)
                right = (y1 - lat) * (x2 - lon)
                det = left - right
                bound = (abs(left) + abs(right)) * _ERRBOUND + _UNDERFLOW
                if det > bound:  # the point is west of the (upward) edge: the ray crosses it
                    if lat < y2:
                        parity ^= bit
                elif det >= -bound:
                    side = _orientation_exact(x1, y1, x2, y2, lon, lat)
                    if side == 0:
                        boundary |= bit
                    elif side > 0 and lat < y2:
                        parity ^= bit
        # Inside the closed exterior, and not strictly inside any hole.
        return bool((parity | boundary) & 1) and not (parity & ~boundary) >> 1


@dataclass(frozen=True)
class ServiceArea:
    """The operational zone: a point is inside when any polygon contains it (boundaries included)."""

    name: str
    polygons: tuple[Polygon, ...]

    def __post_init__(self) -> None:
        polygons = tuple(self.polygons)
        if not polygons or not all(isinstance(p, Polygon) for p in polygons):
            raise ValueError(f"service area {self.name!r}: needs at least one Polygon")
        object.__setattr__(self, "polygons", polygons)

    def contains(self, lat: float, lon: float) -> bool:
        """True if (lat, lon) is in the service area. ValueError for NaN, inf or out-of-range coordinates."""
        if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
            raise ValueError(
                f"coordinates must be finite with lat in [-90, 90] and lon in [-180, 180], got lat={lat!r}, lon={lon!r}"
            )
        for polygon in self.polygons:
            if polygon.contains(lat, lon):
                return True
        return False


_OTHER_GEOMETRIES = frozenset({"Point", "MultiPoint", "LineString", "MultiLineString"})


def _polygon(coordinates: Any, where: str) -> Polygon:
    if not isinstance(coordinates, list) or not coordinates:
        raise ValueError(f"{where}: Polygon coordinates must be a non-empty array of rings")
    rings = [
        _check_ring(raw, f"{where}, ring {i} ({'exterior' if i == 0 else 'hole'})") for i, raw in enumerate(coordinates)
    ]
    return Polygon(rings[0], tuple(rings[1:]))


def _geometry_polygons(geometry: Any, where: str) -> list[Polygon]:
    """The polygons of a GeoJSON geometry: none for points and lines, recursing into collections."""
    if not isinstance(geometry, dict):
        raise ValueError(f"{where}: a geometry must be an object, got {type(geometry).__name__}")
    kind = geometry.get("type")
    if kind == "Polygon":
        return [_polygon(geometry.get("coordinates"), f"{where} (Polygon)")]
    if kind == "MultiPolygon":
        coordinates = geometry.get("coordinates")
        if not isinstance(coordinates, list):
            raise ValueError(f"{where}: MultiPolygon coordinates must be an array of polygons")
        return [_polygon(c, f"{where}, polygon {i}") for i, c in enumerate(coordinates)]
    if kind == "GeometryCollection":
        members = geometry.get("geometries")
        if not isinstance(members, list):
            raise ValueError(f"{where}: GeometryCollection needs a 'geometries' array")
        return [p for i, g in enumerate(members) for p in _geometry_polygons(g, f"{where}, geometry {i}")]
    if kind in _OTHER_GEOMETRIES:
        return []
    raise ValueError(f"{where}: unknown geometry type {kind!r}")


def _feature_polygons(feature: Any, where: str) -> tuple[list[Polygon], Any]:
    """(polygons, properties["name"] or None) of a GeoJSON Feature."""
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        raise ValueError(f"{where}: expected a GeoJSON Feature")
    geometry = feature.get("geometry")
    polygons = [] if geometry is None else _geometry_polygons(geometry, where)
    properties = feature.get("properties")
    return polygons, properties.get("name") if isinstance(properties, dict) else None


def load_service_area(path: str | Path) -> ServiceArea:
    """The service area in a GeoJSON file: a FeatureCollection, a Feature, or a bare geometry.

    Every Polygon and MultiPolygon is used (points and lines are ignored). The name is
    properties["name"] of the first feature that has a polygon, if it is a non-empty string, else
    the file's stem. ValueError, naming the file and the place in it, for anything malformed.
    """
    path = Path(path)
    try:
        document = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"{path}: invalid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ValueError(f"{path}: expected a GeoJSON object, got {type(document).__name__}")
    kind = document.get("type")
    name: Any = None
    if kind == "FeatureCollection":
        features = document.get("features")
        if not isinstance(features, list):
            raise ValueError(f"{path}: a FeatureCollection needs a 'features' array")
        polygons: list[Polygon] = []
        for i, feature in enumerate(features):
            found, feature_name = _feature_polygons(feature, f"{path}: feature {i}")
            if found and not polygons:
                name = feature_name
            polygons.extend(found)
    elif kind == "Feature":
        polygons, name = _feature_polygons(document, f"{path}: feature")
    else:
        polygons = _geometry_polygons(document, f"{path}: geometry")
    if not polygons:
        raise ValueError(f"{path}: no Polygon or MultiPolygon geometry found")
    if not (isinstance(name, str) and name.strip()):
        name = path.stem
    return ServiceArea(name, tuple(polygons))
