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
