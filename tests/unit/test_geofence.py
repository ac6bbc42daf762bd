import math
import random

import orjson
import pytest

from udfs.geofence import DEFAULT_SERVICE_AREA, Polygon, ServiceArea, load_service_area

up = lambda v: math.nextafter(v, math.inf)  # noqa: E731
down = lambda v: math.nextafter(v, -math.inf)  # noqa: E731


def ring(*points):
    """A closed ring from (lon, lat) points."""
    return tuple(points) + (points[0],)


SQUARE = ring((0.0, 0.0), (10.0, 0.0), (10.0, 10.0), (0.0, 10.0))
# A U open to the north: the notch is 3 <= lon <= 6, 3 <= lat <= 9.
U_SHAPE = ring((0.0, 0.0), (9.0, 0.0), (9.0, 9.0), (6.0, 9.0), (6.0, 3.0), (3.0, 3.0), (3.0, 9.0), (0.0, 9.0))
HOLE = ring((4.0, 4.0), (6.0, 4.0), (6.0, 6.0), (4.0, 6.0))


# --- square, concave, holes, boundaries ------------------------------------------------------------

def test_square_inside_outside_edges_and_vertices():
    square = Polygon(SQUARE)
    assert square.bbox == (0.0, 0.0, 10.0, 10.0)
    assert square.contains(5.0, 5.0)
    for lat, lon in [(5.0, 11.0), (5.0, -1.0), (11.0, 5.0), (-1.0, 5.0), (20.0, 20.0)]:
        assert not square.contains(lat, lon), (lat, lon)
    on_edges = [(5.0, 0.0), (5.0, 10.0), (0.0, 5.0), (10.0, 5.0), (0.0, 0.0), (0.0, 10.0), (10.0, 0.0), (10.0, 10.0)]
    for lat, lon in on_edges:
        assert square.contains(lat, lon), (lat, lon)
    # One float step outside each edge is outside, one step inside is inside.
    assert not square.contains(5.0, down(0.0)) and not square.contains(5.0, up(10.0))
    assert not square.contains(down(0.0), 5.0) and not square.contains(up(10.0), 5.0)
    assert square.contains(5.0, up(0.0)) and square.contains(5.0, down(10.0))
    assert square.contains(up(0.0), 5.0) and square.contains(down(10.0), 5.0)
    assert not square.contains(down(0.0), down(0.0)) and not square.contains(up(10.0), up(10.0))


def test_concave_u_shape():
    u = Polygon(U_SHAPE)
    assert not u.contains(6.0, 4.5)  # in the notch
    assert u.contains(6.0, 1.5) and u.contains(6.0, 7.5)  # in the arms
    assert u.contains(1.5, 4.5)  # in the base
    # The notch's edges and vertices are boundary: inside.
    for lat, lon in [(6.0, 3.0), (6.0, 6.0), (3.0, 4.5), (3.0, 3.0), (3.0, 6.0), (9.0, 3.0), (9.0, 6.0), (9.0, 1.5), (9.0, 7.5)]:
        assert u.contains(lat, lon), (lat, lon)
    # The opening between the arms' tops is not boundary; rays along lat 9 and lat 3 pass vertices.
    assert not u.contains(9.0, 4.5)
    for lat, lon in [(9.0, -0.5), (9.0, 9.5), (3.0, -1.0), (3.0, 10.0), (0.0, -1.0), (0.0, 9.5)]:
        assert not u.contains(lat, lon), (lat, lon)
    assert not u.contains(6.0, up(3.0)) and not u.contains(6.0, down(6.0)) and not u.contains(up(3.0), 4.5)
    assert u.contains(6.0, down(3.0)) and u.contains(6.0, up(6.0)) and u.contains(down(3.0), 4.5)


def test_hole_is_outside_and_its_boundary_is_inside():
    holed = Polygon(SQUARE, (HOLE,))
    assert not holed.contains(5.0, 5.0)
    assert holed.contains(2.0, 2.0) and holed.contains(5.0, 8.0)
    for lat, lon in [(5.0, 4.0), (5.0, 6.0), (4.0, 5.0), (6.0, 5.0), (4.0, 4.0), (6.0, 6.0), (4.0, 6.0), (6.0, 4.0)]:
        assert holed.contains(lat, lon), (lat, lon)
    assert not holed.contains(5.0, up(4.0)) and not holed.contains(down(6.0), 5.0)
    assert holed.contains(5.0, down(4.0)) and holed.contains(up(6.0), 5.0)
    assert holed.contains(0.0, 0.0) and not holed.contains(5.0, 10.5)


def test_hole_on_the_exterior_edge():
    notched = Polygon(SQUARE, (ring((0.0, 4.0), (2.0, 4.0), (2.0, 6.0), (0.0, 6.0)),))
    assert not notched.contains(5.0, 1.0)
    assert notched.contains(5.0, 0.0) and notched.contains(4.0, 0.0) and notched.contains(5.0, 2.0)
    assert notched.contains(5.0, 3.0) and not notched.contains(5.0, -0.5)


def test_winding_order_does_not_matter():
    points = [(lat / 2, lon / 2) for lat in range(-2, 23) for lon in range(-2, 23)]
    points += [(up(lat), down(lon)) for lat, lon in points]
    for exterior, holes in [(SQUARE, (HOLE,)), (U_SHAPE, ())]:
        reference = Polygon(exterior, holes)
        for flipped in [Polygon(exterior[::-1], holes), Polygon(exterior, tuple(h[::-1] for h in holes)),
                        Polygon(exterior[::-1], tuple(h[::-1] for h in holes))]:
            assert [flipped.contains(*p) for p in points] == [reference.contains(*p) for p in points]


def test_collinear_and_repeated_vertices():
    square = Polygon(ring((0.0, 0.0), (5.0, 0.0), (5.0, 0.0), (10.0, 0.0), (10.0, 10.0), (0.0, 10.0)))
    assert square.contains(0.0, 5.0) and square.contains(0.0, 7.0) and square.contains(5.0, 5.0)
    assert not square.contains(down(0.0), 5.0) and not square.contains(0.0, 10.5)


def test_service_area_is_the_union_of_its_polygons():
    far = tuple((lon + 20.0, lat) for lon, lat in SQUARE)
    area = ServiceArea("two", (Polygon(SQUARE, (HOLE,)), Polygon(far)))
    assert area.contains(5.0, 5.0 + 20.0) and area.contains(5.0, 2.0) and area.contains(5.0, 30.0)
    assert not area.contains(5.0, 15.0) and not area.contains(5.0, 5.0)
    with pytest.raises(ValueError, match="at least one Polygon"):
        ServiceArea("empty", ())


@pytest.mark.parametrize("lat, lon", [
    (math.nan, 8.68), (50.11, math.nan), (math.inf, 8.68), (50.11, -math.inf),
    (90.0001, 8.68), (-90.5, 8.68), (50.11, 180.5), (50.11, -181.0),
])
def test_service_area_rejects_nan_inf_and_out_of_range(lat, lon):
    area = ServiceArea("square", (Polygon(SQUARE),))
    with pytest.raises(ValueError, match="coordinates must be finite"):
        area.contains(lat, lon)


def test_service_area_accepts_the_extremes():
    area = ServiceArea("square", (Polygon(SQUARE),))
    assert not any(area.contains(lat, lon) for lat, lon in [(90.0, 180.0), (-90.0, -180.0), (90.0, 0.0)])


# --- the default Frankfurt service area ------------------------------------------------------------

KM_PER_DEG_LAT = 111.32
FRANKFURT = (50.1109, 8.6821)  # the simulator's centre


def offset(lat, lon, north_km, east_km):
    return lat + north_km / KM_PER_DEG_LAT, lon + east_km / (KM_PER_DEG_LAT * math.cos(math.radians(lat)))


def test_default_frankfurt_service_area():
    assert DEFAULT_SERVICE_AREA.is_file() and DEFAULT_SERVICE_AREA.parent.name == "data"
    area = load_service_area(DEFAULT_SERVICE_AREA)
    assert area.name == "Frankfurt service area"
    [polygon] = area.polygons
    assert 12 <= len(polygon.exterior) - 1 <= 20 and len(polygon.holes) >= 1

    assert area.contains(50.1105, 8.6821)  # the seed's sample point
    assert not area.contains(*offset(50.1105, 8.6821, 30.0, 0.0))
    assert not area.contains(*offset(50.1105, 8.6821, 0.0, -30.0))
    assert not area.contains(50.081, 8.68)  # in the Stadtwald no-parking hole
    assert area.contains(50.0868, 8.688) and area.contains(50.0765, 8.656)  # hole vertices: inside

    min_lon, min_lat, max_lon, max_lat = polygon.bbox
    width_km = (max_lon - min_lon) * KM_PER_DEG_LAT * math.cos(math.radians(FRANKFURT[0]))
    height_km = (max_lat - min_lat) * KM_PER_DEG_LAT
    assert 9.5 <= width_km <= 12.5 and 9.5 <= height_km <= 12.5
    river_lat = 50.105  # the Main at the Altstadt
    assert all(lat < river_lat for hole in polygon.holes for _, lat in hole)


def test_default_area_holds_most_but_not_all_of_the_simulated_fleet():
    area = load_service_area(DEFAULT_SERVICE_AREA)
    rng = random.Random(7)
    inside = 0
    for _ in range(20_000):  # uniform in the simulator's 6 km disc
        distance, bearing = 6.0 * math.sqrt(rng.random()), rng.uniform(0, 2 * math.pi)
        inside += area.contains(*offset(*FRANKFURT, distance * math.cos(bearing), distance * math.sin(bearing)))
    assert 0.6 < inside / 20_000 < 0.95


# --- loading GeoJSON -------------------------------------------------------------------------------

def write(tmp_path, document, name="area.geojson"):
    path = tmp_path / name
    path.write_bytes(document if isinstance(document, bytes) else orjson.dumps(document))
    return path


def as_lists(r):
    return [list(p) for p in r]


def test_load_multipolygon_feature_and_name(tmp_path):
    far = tuple((lon + 20.0, lat) for lon, lat in SQUARE)
    geometry = {"type": "MultiPolygon", "coordinates": [[as_lists(SQUARE), as_lists(HOLE)], [as_lists(far)]]}
    area = load_service_area(write(tmp_path, {"type": "Feature", "properties": {"name": "Two squares"}, "geometry": geometry}))
    assert area.name == "Two squares" and len(area.polygons) == 2
    assert area.contains(5.0, 25.0) and area.contains(1.0, 1.0) and area.contains(4.0, 5.0)
    assert not area.contains(5.0, 5.0) and not area.contains(5.0, 15.0)


def test_load_bare_geometry_takes_the_file_stem(tmp_path):
    path = write(tmp_path, {"type": "Polygon", "coordinates": [as_lists(U_SHAPE)]}, name="depot_zone.geojson")
    area = load_service_area(path)
    assert area.name == "depot_zone" and area.contains(1.0, 1.0) and not area.contains(6.0, 4.5)
    multi = write(tmp_path, {"type": "MultiPolygon", "coordinates": [[as_lists(SQUARE)]]}, name="multi.json")
    assert load_service_area(str(multi)).name == "multi"


def test_load_feature_collection_skips_other_geometries(tmp_path):
    collection = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"name": "depot"}, "geometry": {"type": "Point", "coordinates": [1, 2]}},
        {"type": "Feature", "properties": None, "geometry": None},
        {"type": "Feature", "properties": {"name": "Zone A"}, "geometry": {"type": "Polygon", "coordinates": [as_lists(SQUARE)]}},
        {"type": "Feature", "properties": {"name": "Zone B"}, "geometry": {"type": "Polygon", "coordinates": [[[20, 0], [30, 0], [30, 10], [20, 0]]]}},
    ]}
    area = load_service_area(write(tmp_path, collection))
    assert area.name == "Zone A" and len(area.polygons) == 2
    assert area.contains(5.0, 5.0) and area.contains(1.0, 29.0) and not area.contains(9.0, 21.0)
    # Integer coordinates are accepted; a third (altitude) value is ignored.
    assert load_service_area(write(tmp_path, {"type": "Polygon", "coordinates": [[[0, 0, 100], [1, 0, 100], [1, 1, 100], [0, 0, 100]]]})).contains(0.25, 0.5)


CLOSED = [[0, 0], [1, 0], [1, 1], [0, 0]]


@pytest.mark.parametrize("document, message", [
    (b'{"type": "FeatureCollection", "features": [', "invalid JSON"),
    (b"NaN", "invalid JSON"),
    (b"[1, 2]", "expected a GeoJSON object"),
    ({"type": "FeatureCollection", "features": []}, "no Polygon or MultiPolygon geometry found"),
    ({"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {}, "geometry": {"type": "LineString", "coordinates": [[0, 0], [1, 1]]}}]},
     "no Polygon or MultiPolygon geometry found"),
    ({"type": "Point", "coordinates": [8.68, 50.11]}, "no Polygon or MultiPolygon geometry found"),
    ({"type": "MultiPolygon", "coordinates": []}, "no Polygon or MultiPolygon geometry found"),
    ({"type": "Circle", "coordinates": []}, "unknown geometry type 'Circle'"),
    ({"type": "FeatureCollection"}, "needs a 'features' array"),
    ({"type": "Polygon", "coordinates": []}, "non-empty array of rings"),
    ({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [0, 0]]]}, r"ring 0 \(exterior\): a ring needs at least 4 positions.*got 3"),
    ({"type": "Polygon", "coordinates": [CLOSED, [[0.1, 0.1], [0.2, 0.1], [0.1, 0.1]]]}, r"ring 1 \(hole\): a ring needs at least 4 positions"),
    ({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]}, r"ring is not closed: first position \[0\.0, 0\.0\] != last position \[0\.0, 1\.0\]"),
    ({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 0], [0, 0]]]}, "at least 3 distinct positions"),
    ({"type": "Polygon", "coordinates": [[[0, 0], [1, "0"], [1, 1], [0, 0]]]}, r"position 1: coordinates must be numbers"),
    ({"type": "Polygon", "coordinates": [[[0, 0], [1, None], [1, 1], [0, 0]]]}, r"position 1: coordinates must be numbers"),
    ({"type": "Polygon", "coordinates": [[[0, 0], [True, 0], [1, 1], [0, 0]]]}, r"position 1: coordinates must be numbers"),
    ({"type": "Polygon", "coordinates": [[[0, 0], [1], [1, 1], [0, 0]]]}, r"position 1: expected \[lon, lat\]"),
    ({"type": "Polygon", "coordinates": [[[0, 0], [181, 0], [1, 1], [0, 0]]]}, r"position 1: coordinates out of range"),
    ({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, -91], [0, 0]]]}, r"position 2: coordinates out of range"),
    ({"type": "MultiPolygon", "coordinates": [[CLOSED], [[[0, 0], [1, 0], [1, 95.5], [0, 0]]]]}, r"polygon 1, ring 0 \(exterior\), position 2: coordinates out of range"),
    ({"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 2]]]}}]},
     r"feature 0 \(Polygon\), ring 0 \(exterior\): ring is not closed"),
])
def test_loader_errors(tmp_path, document, message):
    path = write(tmp_path, document)
    with pytest.raises(ValueError, match=message) as error:
        load_service_area(path)
    assert str(path) in str(error.value)


def test_polygon_validates_its_rings():
    with pytest.raises(ValueError, match="exterior ring: ring is not closed"):
        Polygon(SQUARE[:-1])
    with pytest.raises(ValueError, match="hole 0: a ring needs at least 4 positions"):
        Polygon(SQUARE, (HOLE[:3],))
    with pytest.raises(ValueError, match="coordinates out of range"):
        Polygon(ring((0.0, 0.0), (1.0, 0.0), (math.nan, 1.0)))
    assert Polygon([list(p) for p in SQUARE]).exterior == SQUARE  # normalised to tuples of floats


# --- property test against a slow, plainly exact reference ----------------------------------------
#
# The reference converts every float to an exact integer (times the smallest power of two that makes
# all of a case's coordinates integers) and uses the winding number (Sunday's algorithm) with an
# explicit exact on-segment test: a different algorithm with no rounding at all.

def exact_scale(values):
    """Bits b such that every value times 2**b is an integer (every double is k * 2**-1074)."""
    return max(max(v.as_integer_ratio()[1].bit_length() - 1 for v in values), 0)


def exact(value, bits=64):
    numerator, denominator = value.as_integer_ratio()
    assert (1 << bits) % denominator == 0, value
    return numerator * ((1 << bits) // denominator)


def cross(a, b, p):
    return (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])


def on_segment(a, b, p):
    return (cross(a, b, p) == 0 and min(a[0], b[0]) <= p[0] <= max(a[0], b[0])
            and min(a[1], b[1]) <= p[1] <= max(a[1], b[1]))


def winding_number(ring_, p):
    wn = 0
    for a, b in zip(ring_, ring_[1:]):
        if a[1] <= p[1]:
            if b[1] > p[1] and cross(a, b, p) > 0:
                wn += 1
        elif b[1] <= p[1] and cross(a, b, p) < 0:
            wn -= 1
    return wn


def reference_contains(rings, p):
    """Closed exterior minus open holes, from the definition."""
    def on_boundary(r):
        return any(on_segment(a, b, p) for a, b in zip(r, r[1:]))
    exterior, *holes = rings
    if not (on_boundary(exterior) or winding_number(exterior, p) != 0):
        return False
    return not any(not on_boundary(h) and winding_number(h, p) != 0 for h in holes)


def segments_meet(a, b, c, d):
    d1, d2, d3, d4 = cross(c, d, a), cross(c, d, b), cross(a, b, c), cross(a, b, d)
    if ((d1 > 0 > d2) or (d1 < 0 < d2)) and ((d3 > 0 > d4) or (d3 < 0 < d4)):
        return True
    return on_segment(c, d, a) or on_segment(c, d, b) or on_segment(a, b, c) or on_segment(a, b, d)


def assert_simple(rings):
    """No two edges of any rings meet, except consecutive edges of a ring at their shared vertex."""
    edges = [(i, j, a, b) for i, r in enumerate(rings) for j, (a, b) in enumerate(zip(r, r[1:]))]
    for x, (ri, ei, a, b) in enumerate(edges):
        for rj, ej, c, d in edges[x + 1:]:
            n = len(rings[ri]) - 1
            if ri == rj and (ej - ei) % n in (1, n - 1):
                shared = b if (ej - ei) % n == 1 else a
                other = d if shared == c else c
                assert not on_segment(a, b, other) and not on_segment(c, d, a if shared == b else b)
            else:
                assert not segments_meet(a, b, c, d), (ri, ei, rj, ej)
    holes_inside = all(reference_contains(rings[:1], h[0]) for h in rings[1:])
    assert holes_inside


def star(rng, center, n, r_min, r_max, grid=None):
    """A star-shaped ring: jittered angles (gaps below pi/2), random radii; optionally on a lattice."""
    points = []
    for i in range(n):
        angle = 2 * math.pi * (i + rng.uniform(0.15, 0.85)) / n
        radius = rng.uniform(r_min, r_max)
        lon, lat = center[0] + radius * math.cos(angle) * 1.5, center[1] + radius * math.sin(angle)
        if grid:
            lon, lat = round(lon / grid) * grid, round(lat / grid) * grid
        points.append((lon, lat))
    return ring(*points)


GRID = 2.0**-10  # lattice step in degrees; lattice coordinates are exact floats near Frankfurt


def skyline(rng, columns):
    """A rectilinear ring on the lattice: a bar chart, with many horizontal edges at shared latitudes."""
    widths = [rng.randint(1, 4) for _ in range(columns)]
    heights = [rng.randint(3, 8)]
    while len(heights) < columns:  # neighbours differ, so no vertex repeats; others share latitudes
        heights.append(rng.choice([h for h in range(3, 9) if h != heights[-1]]))
    xs = [sum(widths[:i]) for i in range(columns + 1)]
    top = [p for i in reversed(range(columns)) for p in ((xs[i + 1], heights[i]), (xs[i], heights[i]))]
    lattice = [(0, 0), (xs[-1], 0), *top]
    hole = [(1, 1), (xs[-1] - 1, 1), (xs[-1] // 2, 2)]
    to_deg = lambda p: (8.5 + p[0] * GRID, 50.0 + p[1] * GRID)  # noqa: E731
    return ring(*map(to_deg, lattice)), ring(*map(to_deg, hole))


def lattice_points_on(a, b):
    (ax, ay), (bx, by) = (round(v / GRID) for v in a), (round(v / GRID) for v in b)
    g = math.gcd(bx - ax, by - ay)
    return [((ax + (bx - ax) * t // g) * GRID, (ay + (by - ay) * t // g) * GRID) for t in range(g + 1)]


def sample_points(rng, rings, count, lattice, origin_edges=()):
    exterior = rings[0]
    lons = [p[0] for p in exterior]
    lats = [p[1] for p in exterior]
    pad_lon, pad_lat = (max(lons) - min(lons)) * 0.1, (max(lats) - min(lats)) * 0.1
    lon_range, lat_range = (min(lons) - pad_lon, max(lons) + pad_lon), (min(lats) - pad_lat, max(lats) + pad_lat)
    vertices = [p for r in rings for p in r[:-1]]
    edges = [(a, b) for r in rings for a, b in zip(r, r[1:])]
    nudges = (lambda v: v, up, down)
    points = []
    while len(points) < count:
        kind = rng.random()
        if origin_edges and kind < 0.2:  # very near the origin, on or beside an edge from it
            w = rng.choice(origin_edges)
            t = 10 ** rng.uniform(-15, -1)
            points.append((rng.choice(nudges)(t * w[0]), rng.choice(nudges)(t * w[1])))
        elif kind < 0.4:  # anywhere around the polygon
            points.append((rng.uniform(*lon_range), rng.uniform(*lat_range)))
        elif kind < 0.55:  # a vertex or one float step beside it
            lon, lat = rng.choice(vertices)
            points.append((rng.choice(nudges)(lon), rng.choice(nudges)(lat)))
        elif kind < 0.7:  # on a vertex's latitude: the ray passes through vertices
            points.append((rng.uniform(*lon_range), rng.choice(vertices)[1]))
        elif kind < 0.85:  # on an edge: exactly (lattice) or as near as floats get
            a, b = rng.choice(edges)
            if lattice:
                lon, lat = rng.choice(lattice_points_on(a, b))
            else:
                t = rng.random()
                lon, lat = a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])
            points.append((rng.choice(nudges)(lon), rng.choice(nudges)(lat)))
        elif lattice:  # lattice and half-lattice points: many land exactly on edges
            step = GRID / rng.choice((1, 2))
            points.append((round(rng.uniform(*lon_range) / step) * step, round(rng.uniform(*lat_range) / step) * step))
        else:
            lon, lat = rng.choice(vertices)
            points.append((lon + rng.gauss(0, 1e-9), lat + rng.gauss(0, 1e-9)))
    return points


def polygons_for_property_test():
    rng = random.Random(20240611)
    center = (8.6821, 50.1109)
    cases = []
    for n in (9, 17, 31):  # float stars with a star hole around the same centre
        cases.append((star(rng, center, n, 0.02, 0.05), (star(rng, center, max(4, n // 3), 0.004, 0.012),), False))
    lattice_center = (8.5 + 200 * GRID, 50.0 + 200 * GRID)
    cases.append((star(rng, lattice_center, 14, 40 * GRID, 90 * GRID, GRID),
                  (star(rng, lattice_center, 6, 5 * GRID, 20 * GRID, GRID),), True))
    outer, hole = skyline(rng, 12)
    cases.append((outer, (hole,), True))
    # A vertex at (0, 0): points a tiny fraction along its edges have coordinates fine enough that
    # the float determinant's sign is uncertain, so the exact fallback decides.
    c = (0.3, 0.2)
    outer = list(star(rng, c, 12, 0.2, 0.35)[:-1])
    towards_origin = math.atan2(-c[1], -c[0] / 1.5)
    nearest = min(range(len(outer)), key=lambda i: abs(math.remainder(
        math.atan2(outer[i][1] - c[1], (outer[i][0] - c[0]) / 1.5) - towards_origin, 2 * math.pi)))
    outer[nearest] = (0.0, 0.0)
    cases.append((ring(*outer), (star(rng, c, 5, 0.02, 0.08),), False))
    return cases


def origin_neighbours(exterior):
    if (0.0, 0.0) not in exterior:
        return ()
    i = exterior.index((0.0, 0.0))
    return exterior[i - 1 if i else -2], exterior[i + 1]


@pytest.mark.parametrize("case", range(6))
def test_contains_agrees_with_exact_reference_on_random_polygons(case):
    exterior, holes, lattice = polygons_for_property_test()[case]
    rings = (exterior, *holes)
    points = sample_points(random.Random(case), rings, 20_000, lattice, origin_neighbours(exterior))
    bits = exact_scale([v for r in rings for p in r for v in p] + [v for p in points for v in p])
    exact_rings = [[(exact(lon, bits), exact(lat, bits)) for lon, lat in r] for r in rings]
    assert_simple(exact_rings)
    polygon = Polygon(exterior, holes)
    area = ServiceArea("random", (polygon,))
    boundary_hits = 0
    for lon, lat in points:
        p = (exact(lon, bits), exact(lat, bits))
        expected = reference_contains(exact_rings, p)
        assert polygon.contains(lat, lon) == expected, (case, lat, lon, expected)
        assert area.contains(lat, lon) == expected
        boundary_hits += any(on_segment(a, b, p) for r in exact_rings for a, b in zip(r, r[1:]))
    assert boundary_hits > 200  # the sample really exercises the boundary rule


def test_reference_agrees_on_the_hand_made_polygons():
    for exterior, holes in [(SQUARE, (HOLE,)), (U_SHAPE, ())]:
        rings = [[(exact(lon + 8.0), exact(lat + 50.0)) for lon, lat in r] for r in (exterior, *holes)]
        polygon = Polygon(tuple((lon + 8.0, lat + 50.0) for lon, lat in exterior),
                          tuple(tuple((lon + 8.0, lat + 50.0) for lon, lat in h) for h in holes))
        for lat in range(-2, 23):
            for lon in range(-2, 23):
                lat_, lon_ = 50.0 + lat / 2, 8.0 + lon / 2
                assert polygon.contains(lat_, lon_) == reference_contains(rings, (exact(lon_), exact(lat_)))
