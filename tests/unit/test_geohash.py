import random

import geohash2
import pytest

from udfs.geohash import encode


@pytest.mark.parametrize("precision", range(1, 13))
def test_equals_geohash2_on_random_points(precision):
    rng = random.Random(precision)
    for _ in range(20_000):
        lat, lon = rng.uniform(-90, 90), rng.uniform(-180, 180)
        assert encode(lat, lon, precision) == geohash2.encode(lat, lon, precision), (lat, lon)


def test_equals_geohash2_near_frankfurt_at_zone_precision():
    rng = random.Random(6)
    for _ in range(100_000):
        lat, lon = 50.1109 + rng.gauss(0, 0.05), 8.6821 + rng.gauss(0, 0.08)
        assert encode(lat, lon) == geohash2.encode(lat, lon, 6)


def boundary_points(precision):
    """Exact cell boundaries, their float neighbours, the poles, the antimeridian and zero."""
    total = 5 * precision
    lon_step, lat_step = 360.0 / (1 << ((total + 1) // 2)), 180.0 / (1 << (total // 2))
    rng = random.Random(precision * 31)
    lons = [-180.0, 180.0, 0.0] + [-180.0 + k * lon_step for k in rng.sample(range(1 << ((total + 1) // 2)), min(50, 1 << ((total + 1) // 2)))]
    lats = [-90.0, 90.0, 0.0] + [-90.0 + k * lat_step for k in rng.sample(range(1 << (total // 2)), min(50, 1 << (total // 2)))]
    nudged = lambda v: (v, v + 1e-12, v - 1e-12, __import__("math").nextafter(v, 1e9), __import__("math").nextafter(v, -1e9))  # noqa: E731
    for lat in lats:
        for lon in lons:
            for a in nudged(lat):
                for b in nudged(lon):
                    if -90 <= a <= 90 and -180 <= b <= 180:
                        yield a, b


@pytest.mark.parametrize("precision", [1, 5, 6, 7, 12])
def test_equals_geohash2_on_cell_boundaries(precision):
    for lat, lon in boundary_points(precision):
        assert encode(lat, lon, precision) == geohash2.encode(lat, lon, precision), (lat, lon)


def test_seed_sample_zone():
    assert encode(50.1105, 8.6821) == geohash2.encode(50.1105, 8.6821, 6) == "u0yjjd"


def test_precision_is_checked():
    with pytest.raises(ValueError):
        encode(0, 0, 0)


def test_zone_id_is_precision_six():
    from udfs.geohash import zone_id

    rng = random.Random(66)
    for _ in range(50_000):
        lat, lon = rng.uniform(-90, 90), rng.uniform(-180, 180)
        assert zone_id(lat, lon) == geohash2.encode(lat, lon, 6)
    for lat, lon in boundary_points(6):
        assert zone_id(lat, lon) == geohash2.encode(lat, lon, 6), (lat, lon)


def test_zone_id_on_every_cell_boundary_and_its_neighbours():
    # zone_id checks its one-multiplication estimate against the cell's exact boundaries: sweep all
    # 32768 boundaries of each axis with the float on either side (encode is the general search,
    # itself checked against geohash2 above; a sample goes to geohash2 directly).
    import math

    from udfs.geohash import zone_id

    rng = random.Random(606)
    for k in range(32769):
        lon = -180.0 + k * (360.0 / 32768)
        lat = -90.0 + k * (180.0 / 32768)
        other_lat, other_lon = rng.uniform(-90, 90), rng.uniform(-180, 180)
        for value in (lon, math.nextafter(lon, -1e9), math.nextafter(lon, 1e9)):
            assert zone_id(other_lat, value) == encode(other_lat, value, 6), (other_lat, value)
        for value in (lat, math.nextafter(lat, -1e9), math.nextafter(lat, 1e9)):
            assert zone_id(value, other_lon) == encode(value, other_lon, 6), (value, other_lon)
        if k % 97 == 0:
            assert zone_id(lat, lon) == geohash2.encode(lat, lon, 6), (lat, lon)


def test_zone_id_on_gps_fixes_integers_and_out_of_range_points():
    from udfs.geohash import zone_id

    rng = random.Random(607)
    points = [(round(50.1109 + rng.gauss(0, 0.05), 6), round(8.6821 + rng.gauss(0, 0.08), 6)) for _ in range(20_000)]
    points += [(rng.randint(-90, 90), rng.randint(-180, 180)) for _ in range(2_000)]
    points += [(0, 0), (-0.0, -0.0), (90, 180), (-90, -180), (1e-300, -1e-300), (5e-324, -5e-324)]
    for lat, lon in points:
        assert zone_id(lat, lon) == geohash2.encode(lat, lon, 6), (lat, lon)
    # Outside the ranges geohash2 (and encode) clamp to the first or last cell.
    for lat, lon in [(90.5, 0.0), (-91, 0.0), (0.0, 180.25), (0.0, -181), (1e300, -1e300), (123.0, 456.0)]:
        assert zone_id(lat, lon) == encode(lat, lon, 6) == geohash2.encode(lat, lon, 6), (lat, lon)


@pytest.mark.parametrize(
    "lat, lon",
    [(float("nan"), 0.0), (0.0, float("nan")), (float("inf"), 0.0), (0.0, float("-inf")), (10**400, 0.0), (0.0, "8.68"), (None, 8.68)],
)
def test_zone_id_refuses_what_encode_refuses_with_the_same_error(lat, lon):
    from udfs.geohash import zone_id

    with pytest.raises(Exception) as expected:
        encode(lat, lon, 6)
    with pytest.raises(expected.type, match="^" + __import__("re").escape(str(expected.value)) + "$"):
        zone_id(lat, lon)
