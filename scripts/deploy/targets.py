"""Deploy targets: the local cloud (LocalStack) or a real AWS account."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, overload

from .errors import CredentialsError, DeployError, LocalCloudUnreachableError

if TYPE_CHECKING:  # boto3-stubs, a dev dependency: annotations only
    from botocore.client import BaseClient
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_ecr import ECRClient
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_service_quotas import ServiceQuotasClient
    from mypy_boto3_stepfunctions import SFNClient
    from mypy_boto3_sts import STSClient

# The services the deploy tooling talks to (each typed by its boto3-stubs client below).
Service = Literal["cloudwatch", "ecr", "lambda", "service-quotas", "stepfunctions", "sts"]

TARGETS = ("local", "aws")


@dataclass(frozen=True)
class Target:
    """One place to deploy to; `endpoint` is empty for AWS."""

    name: str
    region: str
    endpoint: str = ""

    @classmethod
    def from_settings(cls, name: str, region: str, endpoint: str) -> Target:
        """Build a target, refusing unknown names and a missing local endpoint."""
        if name not in TARGETS:
            raise DeployError(f"TARGET={name!r} is not one of {', '.join(TARGETS)}")
        if name == "local" and not endpoint:
            raise DeployError("TARGET=local needs the LocalStack endpoint (LOCALSTACK_PORT / --endpoint)")
        return cls(name=name, region=region, endpoint=endpoint if name == "local" else "")

    @property
    def is_local(self) -> bool:
        return self.name == "local"

    def client_environment(self) -> dict[str, str]:
        """Environment for AWS clients (boto3, the cosmicai CLI) aimed at this target."""
        env = dict(os.environ)
        env["AWS_REGION"] = env["AWS_DEFAULT_REGION"] = self.region
        if self.is_local:
            env["AWS_ENDPOINT_URL"] = self.endpoint
            # LocalStack accepts any key; fixed ones keep a user's real keys out of it.
            env["AWS_ACCESS_KEY_ID"] = "test"
            env["AWS_SECRET_ACCESS_KEY"] = "test"
            env.pop("AWS_SESSION_TOKEN", None)
            env.pop("AWS_PROFILE", None)
        else:
            env.pop("AWS_ENDPOINT_URL", None)
        return env

    @overload
    def client(self, service: Literal["cloudwatch"]) -> CloudWatchClient: ...
    @overload
    def client(self, service: Literal["ecr"]) -> ECRClient: ...
    @overload
    def client(self, service: Literal["lambda"]) -> LambdaClient: ...
    @overload
    def client(self, service: Literal["service-quotas"]) -> ServiceQuotasClient: ...
    @overload
    def client(self, service: Literal["stepfunctions"]) -> SFNClient: ...
    @overload
    def client(self, service: Literal["sts"]) -> STSClient: ...

    def client(self, service: Service) -> BaseClient:
        """A boto3 client for `service` at this target (LocalStack's endpoint and test keys
        locally; the standard credential chain on AWS), with standard retries."""
        import boto3
        from botocore.config import Config

        # On AWS a leftover AWS_ENDPOINT_URL (a LocalStack shell) must not redirect the client.
        # botocore-stubs 1.43.126 lacks this Config option (botocore has had it since 1.31).
        config = Config(retries={"mode": "standard"}, ignore_configured_endpoint_urls=not self.is_local)  # type: ignore[call-arg]
        if self.is_local:
            return boto3.client(
                service,
                region_name=self.region,
                config=config,
                endpoint_url=self.endpoint,
                aws_access_key_id="test",
                aws_secret_access_key="test",
            )
        return boto3.client(service, region_name=self.region, config=config)

    def check_reachable(self) -> str:
        """Fail with a clear message unless the target answers; return who we are there."""
        if self.is_local:
            return self._check_localstack()
        return self._check_aws_credentials()

    def _check_localstack(self) -> str:
        url = self.endpoint.rstrip("/") + "/_localstack/health"
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                resp.read()
        except (urllib.error.URLError, OSError) as exc:
            raise LocalCloudUnreachableError(
                f"LocalStack does not answer at {url} ({exc}); start it with `make localstack-up`"
            ) from exc
        return f"LocalStack at {self.endpoint}"

    def _check_aws_credentials(self) -> str:
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            ident = boto3.client("sts", region_name=self.region).get_caller_identity()
        except (BotoCoreError, ClientError) as exc:
            raise CredentialsError(
                "TARGET=aws needs AWS credentials and none work: "
                f"sts get-caller-identity failed ({exc}). Configure the standard chain "
                "(AWS_PROFILE, `aws configure`/`aws sso login`, or AWS_ACCESS_KEY_ID/"
                "AWS_SECRET_ACCESS_KEY) and set AWS_REGION."
            ) from exc
        return f"AWS account {ident['Account']} as {ident['Arn']} in {self.region}"
