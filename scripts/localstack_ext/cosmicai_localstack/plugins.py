"""Every entry point LocalStack loads from this extension, one per concern, with lazy imports
(LocalStack imports this module while it collects plugins; the work happens when one loads).

- `CosmicaiExecutorPlugin`: the Lambda runtime executor `cosmicai` (executor.py, sandbox.py).
- `ecr_provider`: ECR for the free build, served by the moto backend it bundles (ecr.py).
- `enforce_iam`: IAM enforcement and S3's 403-for-absent-keys at the gateway (iam_enforcement.py),
  on unless COSMICAI_ENFORCE_IAM=0; its decision log answers GET /_cosmicai/iam.
- `enforce_lambda_limits`: Lambda's 6 MB synchronous payload quota at the gateway (lambda_limits.py).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from localstack.runtime import hooks
from localstack.services.lambda_.invocation.plugins import RuntimeExecutorPlugin
from localstack.services.plugins import Service, aws_provider

if TYPE_CHECKING:
    from rolo import Response as HttpResponse  # what Response.for_json returns (LocalStack's HTTP layer)

LOG = logging.getLogger(__name__)


class CosmicaiExecutorPlugin(RuntimeExecutorPlugin):
    """Entry point `cosmicai` in `localstack.lambda.runtime_executor` (LAMBDA_RUNTIME_EXECUTOR=cosmicai)."""

    name = "cosmicai"

    def load(self, *args: Any, **kwargs: Any) -> Any:
        from .executor import CosmicaiExecutor

        return CosmicaiExecutor


@aws_provider(api="ecr")
def ecr_provider() -> Service:
    """ECR: every operation forwarded to moto."""
    from .ecr import ecr_service

    return ecr_service()


@hooks.on_infra_start()
def enforce_iam() -> None:
    """Put the IAM enforcer in the gateway's request chain and its status route on the router."""
    from localstack.aws import handlers
    from localstack.http import Response
    from localstack.services.edge import ROUTER

    from .iam_enforcement import STATUS_PATH, IamEnforcer, enforcement_enabled

    enabled = enforcement_enabled()
    enforcer = IamEnforcer()
    if enabled:
        handlers.serve_custom_service_request_handlers.append(enforcer)

    # The router calls endpoint(request, **url_args); the request itself is not needed here.
    def status(_request: object, *_args: object, **_url_args: object) -> HttpResponse:
        return Response.for_json(enforcer.log.as_json(enabled))

    ROUTER.add(STATUS_PATH, status, methods=["GET"])
    LOG.info("cosmicai IAM enforcement %s", "on" if enabled else "OFF (COSMICAI_ENFORCE_IAM=0)")


@hooks.on_infra_start()
def enforce_lambda_limits() -> None:
    """Put the Invoke payload check in the gateway's request chain (always on: AWS always applies it)."""
    from localstack.aws import handlers

    from .lambda_limits import InvokePayloadLimit

    handlers.serve_custom_service_request_handlers.append(InvokePayloadLimit())
