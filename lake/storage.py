"""How the lake's readers and writers reach S3: pyarrow's S3 filesystem and delta-rs both take
their endpoint, region and credentials from the AWS_* environment, so a profile's [aws] becomes
that environment — the region always (the lake stays where the rest of the platform is, in the
EU), and for a local endpoint (moto) the endpoint, plain HTTP and dummy keys. Real AWS needs
nothing else: both use the usual credential chain (instance role, IRSA on Kubernetes, ~/.aws)."""

from __future__ import annotations

import os
from collections.abc import MutableMapping

from connectors.aws_residency import check_residency


def s3_environment(region: str, endpoint_url: str | None, *, allow_outside_eu: bool = False) -> dict[str, str]:
    """The AWS_* variables for this profile; values already in the environment win."""
    check_residency(region, allow_outside_eu=allow_outside_eu)
    wanted = {"AWS_REGION": region}
    if endpoint_url:
        wanted.update(AWS_ENDPOINT_URL=endpoint_url, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
        if endpoint_url.startswith("http://"):
            wanted["AWS_ALLOW_HTTP"] = "true"
    return wanted


def use_profile_s3(config, uris, environ: MutableMapping[str, str] = os.environ) -> bool:
    """If any of `uris` is on S3, put a fleet.config.PlatformConfig's S3 settings in the
    environment, where not already set (process-wide: only when needed). True if it did."""
    if not any(uri.startswith("s3://") for uri in uris):
        return False
    aws = config.aws
    for key, value in s3_environment(aws.region, aws.endpoint_url, allow_outside_eu=aws.allow_outside_eu).items():
        environ.setdefault(key, value)
    return True
