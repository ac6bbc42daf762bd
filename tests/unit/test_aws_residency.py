"""EU data residency: AWS clients and profiles refuse a region outside the EU unless allowed."""

from __future__ import annotations

import pytest

from connectors.aws_clients import make_client
from connectors.aws_residency import ResidencyError, check_residency
from connectors.hot_store import StoreConfig
from fleet.config import ConfigError, load_config

EU = ["eu-central-1", "eu-central-2", "eu-west-1", "eu-west-2", "eu-west-3", "eu-north-1", "eu-south-1",
      "eu-south-2", "eusc-de-east-1"]
OUTSIDE = ["us-east-1", "us-gov-west-1", "ap-southeast-1", "me-central-1", "il-central-1", "ca-central-1", "europe"]


@pytest.mark.parametrize("region", EU)
def test_eu_regions_pass(region):
    check_residency(region, allow_outside_eu=False)


@pytest.mark.parametrize("region", OUTSIDE)
def test_other_regions_are_refused_unless_allowed(region):
    with pytest.raises(ResidencyError, match=f"'{region}' is outside the EU.*allow_outside_eu = true"):
        check_residency(region, allow_outside_eu=False)
    check_residency(region, allow_outside_eu=True)


def test_a_client_for_a_region_outside_the_eu_is_not_built():
    with pytest.raises(ResidencyError, match="us-east-1"):
        make_client("dynamodb", StoreConfig(region="us-east-1", endpoint_url="http://127.0.0.1:1"))
    client = make_client("dynamodb", StoreConfig(region="us-east-1", endpoint_url="http://127.0.0.1:1", allow_outside_eu=True))
    assert client.meta.region_name == "us-east-1"


def test_profiles_refuse_a_region_outside_the_eu_and_carry_the_allowance_to_the_stores():
    with pytest.raises(ConfigError, match="profile 'production': AWS region 'us-east-1' is outside the EU"):
        load_config("production", {"aws.region": "us-east-1"}, environ={})
    config = load_config("production", {"aws.region": "us-east-1", "aws.allow_outside_eu": "true"}, environ={})
    assert config.stores.allow_outside_eu is True and config.stores.region == "us-east-1"
    assert load_config("local", environ={}).stores.allow_outside_eu is False
