"""Which region a deploy goes to, and where that came from.

Order (the AWS CLI's, plus the SDKs' AWS_REGION): an explicit --region / `make ... AWS_REGION=`,
then the AWS_REGION and AWS_DEFAULT_REGION variables, then the region of the active profile
(`aws configure get region`). Only the local cloud falls back to us-east-1: guessing a
region for a real account would put the stack somewhere the user never chose.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import DeployError

LOCAL_DEFAULT_REGION = "us-east-1"
# terraform/variables.tf validates aws_region with the same pattern.
_REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-[0-9]$")


class RegionError(DeployError):
    """No region could be resolved, or it is not a region name, or it differs from the deployed one."""

    def __init__(self, what: str, fix: str) -> None:
        self.what = what
        self.fix = fix
        super().__init__(f"{what}. {fix}")


@dataclass(frozen=True)
class ResolvedRegion:
    """A region and the setting it came from (printed so a surprise is visible)."""

    region: str
    source: str


def profile_region() -> str | None:
    """The region of the active profile (AWS_PROFILE or default) in ~/.aws/config, if any."""
    import botocore.session
    from botocore.exceptions import BotoCoreError

    try:
        # The scoped config is the profile's own section: no environment variables mixed in.
        region = botocore.session.Session().get_scoped_config().get("region")
    except BotoCoreError:  # e.g. AWS_PROFILE names a profile that does not exist
        return None
    return str(region) if region else None


def resolve_region(
    target: str,
    explicit: str = "",
    environ: Mapping[str, str] | None = None,
    profile: Callable[[], str | None] = profile_region,
) -> ResolvedRegion:
    """The region for `target` by the order above; RegionError when TARGET=aws has none."""
    import os

    env = os.environ if environ is None else environ
    candidates: list[tuple[str, Callable[[], str | None]]] = [
        ("--region / make AWS_REGION=", lambda: explicit or None),
        ("AWS_REGION", lambda: env.get("AWS_REGION") or None),
        ("AWS_DEFAULT_REGION", lambda: env.get("AWS_DEFAULT_REGION") or None),
    ]
    # The local cloud never uses the profile (its clients get fixed test keys), so its
    # region does not depend on a developer's AWS configuration either.
    if target != "local":
        name = env.get("AWS_PROFILE") or "default"
        candidates.append((f"profile {name!r} (aws configure get region)", profile))
    for source, get in candidates:
        value = get()
        if value:
            return ResolvedRegion(check_region_name(value.strip(), source), source)
    if target == "local":
        return ResolvedRegion(LOCAL_DEFAULT_REGION, "default for the local cloud")
    raise RegionError(
        "TARGET=aws has no region: none of AWS_REGION, AWS_DEFAULT_REGION or the profile's region is set",
        "Choose one: `export AWS_REGION=eu-west-1`, or `aws configure set region eu-west-1`",
    )


def check_region_name(region: str, source: str) -> str:
    """`region` when it looks like one (us-east-1); RegionError naming where it came from otherwise."""
    if not _REGION_RE.match(region):
        raise RegionError(f"{source} = {region!r} is not a region name like us-east-1", f"Fix or unset {source}")
    return region


def deployed_region(state_file: Path) -> str | None:
    """The region recorded in a target's Terraform state (its `region` output), if any."""
    try:
        state = json.loads(state_file.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    value = (state.get("outputs") or {}).get("region", {}).get("value")
    return value if isinstance(value, str) and value else None


def check_same_region(resolved: ResolvedRegion, state_file: Path, target: str) -> None:
    """Refuse to point an existing stack's state at another region.

    Terraform would plan to create everything anew in the new region and lose track of
    the old stack (it keeps running, and costing, where it was). A second region needs
    its own state folder.
    """
    deployed = deployed_region(state_file)
    if deployed and deployed != resolved.region:
        raise RegionError(
            f"the TARGET={target} stack in {state_file.parent} is deployed in {deployed}, but the region "
            f"resolves to {resolved.region} (from {resolved.source})",
            f"Use AWS_REGION={deployed} for that stack; for a second stack in {resolved.region} use another "
            f"state folder (make ... STATE_DIR=.state-{resolved.region})",
        )
