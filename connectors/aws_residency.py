"""EU data residency for every AWS client (the seed's GDPR promise): a region outside the EU is
refused unless the profile says `[aws] allow_outside_eu = true`. Pure: config loading checks it
without importing boto3, and `aws_clients.make_client` checks it again for clients built in code."""

from __future__ import annotations


class ResidencyError(ValueError):
    """An AWS region outside the EU without the explicit allowance: the seed promises EU residency."""


def check_residency(region: str, *, allow_outside_eu: bool) -> None:
    # Every EU region's name starts "eu-" (eu-central-1/2, eu-west-1/2/3, eu-north-1, eu-south-1/2);
    # "eusc-" (the European Sovereign Cloud) too. Anything else — us-, ap-, me-, il-, ca-… — is not EU.
    if allow_outside_eu or region.startswith(("eu-", "eusc-")):
        return
    raise ResidencyError(
        f"AWS region {region!r} is outside the EU: telemetry must stay in the EU (GDPR data residency). "
        "Use an eu-* region, or set [aws] allow_outside_eu = true if this really is intended."
    )
