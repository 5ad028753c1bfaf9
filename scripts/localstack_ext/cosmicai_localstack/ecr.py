"""ECR for the free LocalStack build: every operation served by the moto backend it bundles.

API only (repositories, policies, lifecycle, scanning settings, tokens); there is no registry to
push image layers to, which the process executor does not need and the docker executor replaces
with the local Docker engine's tags.
"""

from __future__ import annotations

from localstack.services.plugins import Service


class EcrMotoProvider:
    """Marks the provider of the `ecr` API; requests go straight to moto."""

    service = "ecr"


def ecr_service() -> Service:
    """The ECR service with a dispatch table forwarding each operation to moto (plugins.ecr_provider)."""
    from localstack.aws.api import RequestContext, ServiceRequest, ServiceResponse
    from localstack.aws.skeleton import DispatchTable
    from localstack.aws.spec import load_service
    from localstack.services.moto import call_moto

    def forward(context: RequestContext, request: ServiceRequest) -> ServiceResponse:
        return call_moto(context)  # moto parses the request again from the context

    table: DispatchTable = {name: forward for name in load_service("ecr").operation_names}
    return Service.for_provider(EcrMotoProvider(), dispatch_table_factory=lambda _provider: table)
