"""IAM enforcement for the free LocalStack build: every call made with a role's credentials is
authorized against that role's policies (and the bucket's policy) before the service serves it.

The free build accepts every call whatever the role says (`ENFORCE_IAM` is a Pro feature), which
let a prefix-conditioned `s3:ListBucket` grant pass a HeadBucket that AWS refuses. Here:

- **Who calls**: a function's environment gets STS AssumeRole credentials of its execution role,
  and Step Functions calls Lambda and S3 (ItemReader) with credentials of the state machine's role;
  the request's access key finds those credentials in LocalStack's STS store, hence the role.
  Calls signed with any other key (the user's `test` keys, LocalStack's internal clients) are the
  account's administrator and pass unchecked, as an admin user's calls would on AWS.
- **What AWS checks**: `iam_requests.authorizations` (action, resource ARN, condition keys).
- **Decision**: `iam_policy.evaluate` over the role's inline and managed policies, its permissions
  boundary and, for S3, the bucket policy. A refusal is the AccessDenied AWS sends (S3's `AccessDenied`
  403, Lambda's `AccessDeniedException` 403, JSON services' `AccessDeniedException` 400).
- **S3's 403 for absent keys**: GetObject/HeadObject of a missing key answers 403 AccessDenied,
  not 404 NoSuchKey, to a caller without `s3:ListBucket` on the bucket (S3 GetObject "Permissions").

Requests carry no TLS locally; `aws:SecureTransport` is "true" because every AWS SDK call in Lambda
is HTTPS, so the stack's TLS-only bucket policies judge the calls as they would on AWS.
Decisions are counted and the latest denials kept for `GET /_cosmicai/iam` (tests read it).
"""

from __future__ import annotations

import collections
import functools
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from .iam_policy import AuthzRequest, Decision, Policy, PolicyError, PolicyKind, evaluate, parse_policy
from .iam_requests import Authorization, Where, access_denied_message, authorizations, s3_bucket_arn

LOG = logging.getLogger(__name__)
ENFORCE_ENV = "COSMICAI_ENFORCE_IAM"
STATUS_PATH = "/_cosmicai/iam"
# The error each service's protocol sends for an IAM refusal: (code, HTTP status).
_DENIAL_ERRORS = {
    "s3": ("AccessDenied", 403),
    "sts": ("AccessDenied", 403),
    "iam": ("AccessDenied", 403),
    "lambda": ("AccessDeniedException", 403),
}
_DEFAULT_DENIAL = ("AccessDeniedException", 400)
_MISSING_KEY_OPERATIONS = ("GetObject", "HeadObject")


@functools.lru_cache(maxsize=512)
def _parsed(doc: str, kind: PolicyKind, name: str) -> Policy:
    """parse_policy of a stored document, once per distinct text: every S3 call of every function
    is authorized, and the same few role and bucket policies are read each time."""
    return parse_policy(doc, kind=kind, name=name)


def _policy(doc: Any, kind: PolicyKind = "identity", name: str = "") -> Policy:
    return _parsed(doc if isinstance(doc, str) else json.dumps(doc, sort_keys=True), kind, name)


def enforcement_enabled(environ: dict[str, str] | None = None) -> bool:
    """COSMICAI_ENFORCE_IAM: on unless set to 0/false/no/off (the launcher passes the Makefile's ENFORCE_IAM)."""
    value = (environ if environ is not None else os.environ).get(ENFORCE_ENV, "1").strip().lower()
    return value not in ("0", "false", "no", "off")


@dataclass(frozen=True)
class Caller:
    """A role session: the session ARN (what AccessDenied names), the role ARN and its account."""

    session_arn: str
    role_arn: str
    role_name: str
    account: str


class RoleIdentities:
    """Access key -> role session, from LocalStack's STS store (role ARNs from its IAM store)."""

    def caller(self, access_key_id: str | None) -> Caller | None:
        if not access_key_id:
            return None
        from localstack.services.sts.models import sts_stores

        # credentials are shared across accounts/regions in the store (CrossAccountAttribute)
        creds = sts_stores["000000000000"]["us-east-1"].credentials.get(access_key_id)
        if creds is None or creds.is_expired() or ":assumed-role/" not in creds.arn:
            return None
        role_name = creds.arn.split(":assumed-role/", 1)[1].split("/", 1)[0]
        entity = self._role(creds.account_id, role_name)
        role_arn = entity.role["Arn"] if entity is not None else f"arn:aws:iam::{creds.account_id}:role/{role_name}"
        return Caller(session_arn=creds.arn, role_arn=role_arn, role_name=role_name, account=creds.account_id)

    @staticmethod
    def _role(account: str, role_name: str) -> Any:
        from localstack.services.iam.models import iam_stores

        return iam_stores[account]["us-east-1"].ROLES.get(role_name)

    def policies(self, caller: Caller) -> tuple[list[Policy], Policy | None]:
        """The role's identity policies (inline + customer-managed) and its permissions boundary."""
        from localstack.services.iam.models import iam_stores

        store = iam_stores[caller.account]["us-east-1"]
        entity = store.ROLES.get(caller.role_name)
        if entity is None:  # role deleted while its credentials live on: nothing is allowed
            return [], None
        docs: list[Any] = list(entity.inline_policies.values())
        docs += [d for d in (self._managed_document(store, arn) for arn in entity.attached_policy_arns) if d]
        boundary_arn = (entity.role.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn")
        boundary_doc = self._managed_document(store, boundary_arn) if boundary_arn else None
        policies = [_policy(d, name=f"{caller.role_name} policy") for d in docs]
        # A boundary that cannot be read allows nothing (stricter than AWS, never laxer).
        boundary = (
            _policy(boundary_doc)
            if boundary_doc
            else (_policy({"Version": "2012-10-17", "Statement": []}) if boundary_arn else None)
        )
        return policies, boundary

    @staticmethod
    def _managed_document(store: Any, arn: str) -> Any:
        entity = store.MANAGED_POLICIES.get(arn)
        if entity is None:
            # AWS-managed policies: LocalStack keeps no documents for them; ignoring one is stricter.
            LOG.warning("cosmicai IAM: managed policy %s has no document here; it allows nothing", arn)
            return None
        version = entity.versions.get(entity.policy.get("DefaultVersionId"))
        return version.get("Document") if version else None


def _bucket(account: str, region: str, name: str) -> Any:
    from localstack.services.s3.models import s3_stores

    return s3_stores[account][region].buckets.get(name)


def _key_exists(bucket: Any, key: str) -> bool:
    from localstack.services.s3.models import S3DeleteMarker

    obj = bucket.objects.get(key)
    return obj is not None and not isinstance(obj, S3DeleteMarker)


class DecisionLog:
    """Counts of decisions and the latest denials (what GET /_cosmicai/iam returns)."""

    def __init__(self, keep: int = 200) -> None:
        self._lock = threading.Lock()
        self.allowed = 0
        self.denied = 0
        self.denials: collections.deque[dict[str, Any]] = collections.deque(maxlen=keep)

    def record(self, allowed: bool, caller: Caller, auth: Authorization, reason: str) -> None:
        with self._lock:
            if allowed:
                self.allowed += 1
                return
            self.denied += 1
            self.denials.append(
                {
                    "time": time.time(),
                    "principal": caller.session_arn,
                    "role": caller.role_arn,
                    "action": auth.action,
                    "resource": auth.resource,
                    "reason": reason,
                }
            )

    def as_json(self, enforced: bool) -> dict[str, Any]:
        with self._lock:
            return {"enforced": enforced, "allowed": self.allowed, "denied": self.denied, "denials": list(self.denials)}


class IamEnforcer:
    """Gateway request handler: authorize role calls; answer AccessDenied as AWS would."""

    def __init__(self, identities: RoleIdentities | None = None, log: DecisionLog | None = None) -> None:
        self.identities = identities or RoleIdentities()
        self.log = log or DecisionLog()

    def __call__(self, chain: Any, context: Any, response: Any) -> None:
        if context.service is None or context.operation is None:
            return
        from localstack.utils.aws.request_context import extract_access_key_id_from_auth_header

        caller = self.identities.caller(extract_access_key_id_from_auth_header(context.request.headers))
        if caller is None:
            return
        service, operation = context.service.service_name, context.operation.name
        params = context.service_request or {}
        if self._lambda_log_group_exists(context, service, operation, params):
            return
        where = Where(region=context.region, account=context.account_id)
        for auth in authorizations(service, operation, params, where):
            self._authorize(caller, service, auth, where)
        if service == "s3" and operation in _MISSING_KEY_OPERATIONS:
            self._absent_key_is_forbidden(caller, params, where)

    def _authorize(self, caller: Caller, service: str, auth: Authorization, where: Where) -> None:
        verdict, reason = self.decide(caller, service, auth, where)
        self.log.record(verdict, caller, auth, reason)
        if not verdict:
            LOG.warning("cosmicai IAM: denied %s %s on %s (%s)", caller.session_arn, auth.action, auth.resource, reason)
            self._deny(service, access_denied_message(caller.session_arn, auth.action, auth.resource, reason))

    def decide(self, caller: Caller, service: str, auth: Authorization, where: Where) -> tuple[bool, str]:
        """(allowed, AWS's "because ..." reason)."""
        try:
            identity, boundary = self.identities.policies(caller)
            resource_policy, resource_account = self._resource_policy(service, auth, where)
        except PolicyError as exc:  # AWS would have refused to store it; refuse to use it
            return False, f"a policy of {caller.role_arn} is malformed ({exc})"
        context = {
            "aws:SecureTransport": "true",
            "aws:PrincipalArn": caller.role_arn,
            "aws:PrincipalAccount": caller.account,
            "aws:PrincipalType": "AssumedRole",
            "aws:RequestedRegion": where.region,
            "aws:CurrentTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "aws:EpochTime": str(int(time.time())),
            **auth.context,
        }
        request = AuthzRequest(
            action=auth.action,
            resource=auth.resource,
            principal_arn=caller.session_arn,
            principal_account=caller.account,
            context=context,
        )
        verdict = evaluate(identity, request, resource_policy=resource_policy, resource_account=resource_account)
        if verdict.decision is Decision.EXPLICIT_DENY:
            return False, f"of an explicit deny ({verdict.statement})"
        if not verdict.allowed:
            return False, f"no identity-based policy allows the {auth.action} action"
        if boundary is not None and not evaluate([boundary], request).allowed:
            return False, f"no permissions boundary allows the {auth.action} action"
        return True, f"allowed by {verdict.statement}"

    @staticmethod
    def _resource_policy(service: str, auth: Authorization, where: Where) -> tuple[Policy | None, str | None]:
        if service != "s3" or not auth.resource.startswith("arn:aws:s3:::"):
            return None, None
        bucket = _bucket(where.account, where.region, auth.resource.removeprefix("arn:aws:s3:::").split("/", 1)[0])
        if bucket is None or not bucket.policy:
            return None, None
        return _policy(bucket.policy, "resource", f"bucket policy of {bucket.name}"), bucket.bucket_account_id

    def _absent_key_is_forbidden(self, caller: Caller, params: dict[str, Any], where: Where) -> None:
        """S3 answers 404 for a missing key only to callers allowed s3:ListBucket on the bucket
        (evaluated without s3:prefix: a prefix-conditioned grant does not count)."""
        bucket = _bucket(where.account, where.region, params.get("Bucket", ""))
        if bucket is None or _key_exists(bucket, params.get("Key", "")):
            return
        listing = Authorization("s3:ListBucket", s3_bucket_arn(bucket.name))
        allowed, reason = self.decide(caller, "s3", listing, where)
        if not allowed:
            self.log.record(False, caller, listing, "missing key: " + reason)
            self._deny("s3", access_denied_message(caller.session_arn, "s3:ListBucket", listing.resource, reason))

    @staticmethod
    def _lambda_log_group_exists(context: Any, service: str, operation: str, params: dict[str, Any]) -> bool:
        """LocalStack's Lambda log writer (standing in for Lambda's service) calls CreateLogGroup with
        the function's role before CreateLogStream; AWS's Lambda needs no CreateLogGroup for an
        existing group. So CreateLogGroup of an existing group passes to LocalStack, which answers
        ResourceAlreadyExistsException (AWS: AccessDenied): an error either way, nothing created."""
        if service != "logs" or operation != "CreateLogGroup":
            return False
        from localstack.aws.connect import connect_to

        name = params.get("logGroupName", "")
        logs = connect_to(region_name=context.region, aws_access_key_id=context.account_id).logs
        groups = logs.describe_log_groups(logGroupNamePrefix=name).get("logGroups", [])
        return any(g["logGroupName"] == name for g in groups)

    @staticmethod
    def _deny(service: str, message: str) -> None:
        from localstack.aws.api import CommonServiceException

        code, status = _DENIAL_ERRORS.get(service, _DEFAULT_DENIAL)
        raise CommonServiceException(code, message, status_code=status, sender_fault=True)
