"""Lambda's payload quota at the gateway: a synchronous Invoke whose request payload exceeds 6 MB
is refused with RequestEntityTooLargeException (413), as Lambda does, before any environment runs.

LocalStack leaves this check to its own runtime-init binary (LOCALSTACK_MAX_PAYLOAD_SIZE), which our
executor does not use; the response side (6 MB) is checked in the executor's invoke.
"""

from __future__ import annotations

from typing import Any

# Lambda quotas: "Invocation payload (request and response): 6 MB each for synchronous invocations".
MAX_SYNC_PAYLOAD_BYTES = 6 * 1024 * 1024


class InvokePayloadLimit:
    """Gateway request handler refusing oversized synchronous Invoke payloads."""

    def __call__(self, chain: Any, context: Any, response: Any) -> None:
        if context.service is None or context.service.service_name != "lambda":
            return
        if context.operation is None or context.operation.name != "Invoke":
            return
        request = context.service_request or {}
        if (request.get("InvocationType") or "RequestResponse") != "RequestResponse":
            return
        # the Invoke body is the payload (a stream in the parsed request): its length is the size
        size = context.request.content_length
        if size is None:
            size = len(context.request.get_data(cache=True))
        if size > MAX_SYNC_PAYLOAD_BYTES:
            from localstack.aws.api import CommonServiceException

            raise CommonServiceException(
                "RequestEntityTooLargeException",
                f"{size} byte payload is too large for the RequestResponse invocation type (limit "
                f"{MAX_SYNC_PAYLOAD_BYTES} bytes)",
                status_code=413,
                sender_fault=True,
            )
