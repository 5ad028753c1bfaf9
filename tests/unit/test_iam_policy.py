"""The IAM policy evaluator against AWS's documented decisions, one table row per documented rule.

Doc pages cited (AWS IAM User Guide): [eval] "Policy evaluation logic", [ops] "IAM JSON policy
elements: Condition operators", [multi] "Conditions with multiple context keys or values",
[sv-mv] "Single-valued vs multivalued context keys", [action]/[resource]/[principal]/[notprincipal]
"IAM JSON policy elements: Action/NotAction/Resource/NotResource/Principal/NotPrincipal",
[vars] "IAM policy elements: Variables and tags".
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "localstack_ext"))

from cosmicai_localstack.iam_policy import (  # noqa: E402
    AuthzRequest,
    Decision,
    PolicyError,
    Verdict,
    evaluate,
    parse_policy,
)

ACCT = "000000000000"
OTHER = "111111111111"
ROLE = f"arn:aws:iam::{ACCT}:role/fn-role"
SESSION = f"arn:aws:sts::{ACCT}:assumed-role/fn-role/fn"
BUCKET = "arn:aws:s3:::b"
OBJ = "arn:aws:s3:::b/runs/x"
# A: allowed, X: explicitly denied, N: not allowed (implicit deny)
A, X, N = Decision.ALLOW, Decision.EXPLICIT_DENY, Decision.IMPLICIT_DENY


def st(effect: str = "Allow", action: Any = "s3:*", resource: Any = "*", **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"Effect": effect, **extra}
    if "NotAction" not in extra:
        out["Action"] = action
    if "NotResource" not in extra and resource is not None:
        out["Resource"] = resource
    return out


def pol(*statements: dict[str, Any], version: str = "2012-10-17") -> dict[str, Any]:
    return {"Version": version, "Statement": list(statements)}


def cond(operator: str, key: str, value: Any, effect: str = "Allow", **kw: Any) -> dict[str, Any]:
    return pol(st(effect, "s3:*", "*", Condition={operator: {key: value}}, **kw))


ALLOW_ALL_S3 = pol(st())
LIST_RUNS = pol(st("Allow", "s3:ListBucket", BUCKET, Condition={"StringLike": {"s3:prefix": ["runs/*"]}}))
LIST_RUNS_IFEXISTS = pol(
    st("Allow", "s3:ListBucket", BUCKET, Condition={"StringLikeIfExists": {"s3:prefix": ["runs/*"]}})
)
TLS_ONLY = pol(
    st("Deny", "s3:*", [BUCKET, BUCKET + "/*"], Principal="*", Condition={"Bool": {"aws:SecureTransport": "false"}})
)


def case(
    name: str,
    expected: Decision,
    identity: list[dict[str, Any]] | tuple[()] = (),
    resource: dict[str, Any] | None = None,
    action: str = "s3:GetObject",
    arn: str = OBJ,
    ctx: dict[str, Any] | None = None,
    principal: str = SESSION,
    resource_account: str | None = None,
) -> Any:
    return pytest.param(
        list(identity), resource, action, arn, ctx or {}, principal, resource_account, expected, id=name
    )


CASES = [
    # [ops] "If the key that you specify in a policy condition is not present in the request
    # context, the values do not match and the condition is false": HeadBucket is authorized as
    # s3:ListBucket with no s3:prefix, so a prefix-conditioned ListBucket grant does not cover it.
    case("headbucket-prefix-condition-key-missing", N, [LIST_RUNS], action="s3:ListBucket", arn=BUCKET),
    case("listbucket-prefix-matches", A, [LIST_RUNS], action="s3:ListBucket", arn=BUCKET, ctx={"s3:prefix": "runs/x"}),
    case("listbucket-prefix-other", N, [LIST_RUNS], action="s3:ListBucket", arn=BUCKET, ctx={"s3:prefix": "other/x"}),
    # [ops] ...IfExists: "If the key is not present, the condition evaluates to true"
    case("stringlikeifexists-key-missing", A, [LIST_RUNS_IFEXISTS], action="s3:ListBucket", arn=BUCKET),
    # [ops] ...IfExists on a present key is the plain operator: a non-match is false
    case(
        "stringlikeifexists-present-no-match",
        N,
        [LIST_RUNS_IFEXISTS],
        action="s3:ListBucket",
        arn=BUCKET,
        ctx={"s3:prefix": "other/"},
    ),
    # [ops] "If the policy condition requires that the key is not matched, such as StringNotLike or
    # ArnNotLike, and the right key is not present, the condition is true."
    case("stringnotlike-key-missing", A, [cond("StringNotLike", "s3:prefix", "secret/*")]),
    case(
        "stringnotlike-key-matches", N, [cond("StringNotLike", "s3:prefix", "secret/*")], ctx={"s3:prefix": "secret/a"}
    ),
    case("numericnotequals-key-missing", A, [cond("NumericNotEquals", "s3:max-keys", "5")]),
    case("notipaddress-key-missing", A, [cond("NotIpAddress", "aws:SourceIp", "10.0.0.0/8")]),
    case("arnnotlike-key-missing", A, [cond("ArnNotLike", "aws:SourceArn", "arn:aws:sqs:*:*:*")]),
    # [multi] several values for one key are ORed; for a negated operator they are NORed
    case("stringequals-values-ored", A, [cond("StringEquals", "s3:prefix", ["a", "b"])], ctx={"s3:prefix": "b"}),
    case(
        "stringnotequals-values-nored-one-matches",
        N,
        [cond("StringNotEquals", "s3:prefix", ["a", "b"])],
        ctx={"s3:prefix": "b"},
    ),
    case(
        "stringnotequals-values-nored-none-match",
        A,
        [cond("StringNotEquals", "s3:prefix", ["a", "b"])],
        ctx={"s3:prefix": "c"},
    ),
    # [multi] operators ANDed, keys within an operator ANDed; [ops] key names case-insensitive
    case(
        "keys-anded-one-fails",
        N,
        [pol(st(Condition={"StringEquals": {"s3:prefix": "a", "s3:delimiter": "/"}}))],
        ctx={"S3:Prefix": "a", "s3:delimiter": "-"},
    ),
    case(
        "keys-anded-case-insensitive-names",
        A,
        [pol(st(Condition={"StringEquals": {"S3:PREFIX": "a"}, "Bool": {"aws:securetransport": True}}))],
        ctx={"s3:prefix": "a", "aws:SecureTransport": "true"},
    ),
    case(
        "stringequals-case-sensitive-value", N, [cond("StringEquals", "s3:prefix", "Runs")], ctx={"s3:prefix": "runs"}
    ),
    case("stringequalsignorecase", A, [cond("StringEqualsIgnoreCase", "s3:prefix", "Runs")], ctx={"s3:prefix": "rUNS"}),
    case("stringequals-no-wildcards", N, [cond("StringEquals", "s3:prefix", "runs/*")], ctx={"s3:prefix": "runs/x"}),
    # [eval] "An explicit deny in any of these policies overrides the allow."
    case("explicit-deny-beats-allow", X, [pol(st(), st("Deny", "s3:GetObject", "arn:aws:s3:::b/*"))]),
    case("explicit-deny-in-another-policy", X, [ALLOW_ALL_S3, pol(st("Deny", "s3:Get*", "*"))]),
    # [eval] "By default, all requests are implicitly denied"
    case("no-policy-implicit-deny", N),
    case("allow-other-action-implicit-deny", N, [pol(st("Allow", "s3:PutObject"))]),
    # [action] NotAction with Allow: everything except the listed actions
    case("notaction-allow-other-service", A, [pol(st("Allow", NotAction="iam:*", resource="*"))]),
    case(
        "notaction-allow-excluded",
        N,
        [pol(st("Allow", NotAction="iam:*", resource="*"))],
        action="iam:CreateRole",
        arn=ROLE,
    ),
    # [action] NotAction with Deny: deny everything except the listed actions
    case(
        "notaction-deny-other",
        X,
        [pol(st("Allow", "*"), st("Deny", NotAction="s3:*", resource="*"))],
        action="sqs:SendMessage",
        arn=f"arn:aws:sqs:us-east-1:{ACCT}:q",
    ),
    case("notaction-deny-excluded", A, [pol(st("Allow", "*"), st("Deny", NotAction="s3:*", resource="*"))]),
    # [resource] NotResource: every resource except the listed ones
    case("notresource-allow-other", A, [pol(st("Allow", "s3:*", None, NotResource="arn:aws:s3:::secret/*"))]),
    case(
        "notresource-allow-excluded",
        N,
        [pol(st("Allow", "s3:*", None, NotResource="arn:aws:s3:::secret/*"))],
        arn="arn:aws:s3:::secret/k",
    ),
    # [resource] "?" matches exactly one character, "*" any run
    case(
        "wildcard-question-one-char",
        A,
        [pol(st("Allow", "s3:GetObject", "arn:aws:s3:::b/run-?"))],
        arn="arn:aws:s3:::b/run-1",
    ),
    case(
        "wildcard-question-not-two",
        N,
        [pol(st("Allow", "s3:GetObject", "arn:aws:s3:::b/run-?"))],
        arn="arn:aws:s3:::b/run-10",
    ),
    case(
        "wildcard-star-spans-slashes",
        A,
        [pol(st("Allow", "s3:GetObject", "arn:aws:s3:::b/*"))],
        arn="arn:aws:s3:::b/runs/x/y:z",
    ),
    case(
        "wildcard-star-in-resource-part-spans-colons",
        A,
        [pol(st("Allow", "logs:PutLogEvents", f"arn:aws:logs:*:{ACCT}:log-group:/aws/lambda/f:*"))],
        action="logs:PutLogEvents",
        arn=f"arn:aws:logs:us-east-1:{ACCT}:log-group:/aws/lambda/f:log-stream:s",
    ),
    case(
        "arn-account-component-checked",
        N,
        [pol(st("Allow", "sqs:*", f"arn:aws:sqs:*:{OTHER}:*"))],
        action="sqs:SendMessage",
        arn=f"arn:aws:sqs:us-east-1:{ACCT}:q",
    ),
    case(
        "star-alone-matches-everything",
        A,
        [pol(st("Allow", "*", "*"))],
        action="states:StartExecution",
        arn=f"arn:aws:states:us-east-1:{ACCT}:stateMachine:sm",
    ),
    # [action] "Action ... values are case-insensitive"
    case("action-case-insensitive", A, [pol(st("Allow", "S3:getobject", OBJ))]),
    case("action-wildcard-case-insensitive", A, [pol(st("Allow", "s3:get*", OBJ))], action="S3:GetObject"),
    # [resource] ARNs are case-sensitive
    case("resource-case-sensitive", N, [pol(st("Allow", "s3:GetObject", "arn:aws:s3:::B/*"))]),
    # [ops] Bool aws:SecureTransport in a bucket policy (Principal "*"): deny plain HTTP
    case("securetransport-true", A, [ALLOW_ALL_S3], TLS_ONLY, ctx={"aws:SecureTransport": "true"}),
    case("securetransport-false", X, [ALLOW_ALL_S3], TLS_ONLY, ctx={"aws:SecureTransport": "false"}),
    # key absent: Bool is a positive operator, so the condition is false and the Deny does not apply
    case("securetransport-missing", A, [ALLOW_ALL_S3], TLS_ONLY),
    # [sv-mv] ForAllValues: "returns true if every context key value in the request matches at least
    # one context key value in the policy. It also returns true if there are no context keys"
    case("forallvalues-missing", A, [cond("ForAllValues:StringEquals", "aws:TagKeys", ["env", "team"])]),
    case(
        "forallvalues-empty",
        A,
        [cond("ForAllValues:StringEquals", "aws:TagKeys", ["env", "team"])],
        ctx={"aws:TagKeys": []},
    ),
    case(
        "forallvalues-subset",
        A,
        [cond("ForAllValues:StringEquals", "aws:TagKeys", ["env", "team"])],
        ctx={"aws:TagKeys": ["env", "team"]},
    ),
    case(
        "forallvalues-extra-value",
        N,
        [cond("ForAllValues:StringEquals", "aws:TagKeys", ["env", "team"])],
        ctx={"aws:TagKeys": ["env", "owner"]},
    ),
    # [sv-mv] ForAnyValue: true if at least one request value matches; false if the key is missing
    case("foranyvalue-missing", N, [cond("ForAnyValue:StringEquals", "aws:TagKeys", "env")]),
    case(
        "foranyvalue-one-of-many",
        A,
        [cond("ForAnyValue:StringEquals", "aws:TagKeys", "env")],
        ctx={"aws:TagKeys": ["owner", "env"]},
    ),
    case(
        "foranyvalue-none",
        N,
        [cond("ForAnyValue:StringEquals", "aws:TagKeys", "env")],
        ctx={"aws:TagKeys": ["owner", "team"]},
    ),
    # [sv-mv] multivalued keys "require" a set operator: undecided, so Allow does not apply ...
    case(
        "multivalued-without-set-op-allow",
        N,
        [cond("StringEquals", "aws:TagKeys", "env")],
        ctx={"aws:TagKeys": ["env", "team"]},
    ),
    # ... and Deny does (stricter either way)
    case(
        "multivalued-without-set-op-deny",
        X,
        [ALLOW_ALL_S3, cond("StringEquals", "aws:TagKeys", "env", "Deny")],
        ctx={"aws:TagKeys": ["env", "team"]},
    ),
    # [ops] Null: "true" means the key is absent, "false" that it is present
    case("null-true-key-missing", A, [cond("Null", "s3:prefix", "true")]),
    case("null-true-key-present", N, [cond("Null", "s3:prefix", "true")], ctx={"s3:prefix": ""}),
    case("null-false-key-present", A, [cond("Null", "s3:prefix", False)], ctx={"s3:prefix": "a"}),
    case("null-false-key-missing", N, [cond("Null", "s3:prefix", "false")]),
    # [ops] numeric operators
    case("numeric-le-equal", A, [cond("NumericLessThanEquals", "s3:max-keys", "10")], ctx={"s3:max-keys": "10"}),
    case("numeric-le-above", N, [cond("NumericLessThanEquals", "s3:max-keys", 10)], ctx={"s3:max-keys": "11"}),
    case("numeric-key-missing", N, [cond("NumericLessThan", "s3:max-keys", "10")]),
    case("numeric-not-a-number", N, [cond("NumericLessThan", "s3:max-keys", "10")], ctx={"s3:max-keys": "ten"}),
    # [ops] date operators: ISO 8601 and epoch (aws:EpochTime)
    case(
        "date-before",
        A,
        [cond("DateLessThan", "aws:CurrentTime", "2030-01-01T00:00:00Z")],
        ctx={"aws:CurrentTime": "2025-06-01T12:00:00Z"},
    ),
    case(
        "date-after",
        N,
        [cond("DateLessThan", "aws:CurrentTime", "2030-01-01T00:00:00Z")],
        ctx={"aws:CurrentTime": "2031-01-01T00:00:00Z"},
    ),
    case(
        "date-epoch",
        A,
        [cond("DateGreaterThan", "aws:EpochTime", "2020-01-01T00:00:00Z")],
        ctx={"aws:EpochTime": "1700000000"},
    ),
    # [ops] IP address operators
    case("ipaddress-in", A, [cond("IpAddress", "aws:SourceIp", "10.0.0.0/8")], ctx={"aws:SourceIp": "10.1.2.3"}),
    case("ipaddress-out", N, [cond("IpAddress", "aws:SourceIp", "10.0.0.0/8")], ctx={"aws:SourceIp": "192.168.0.1"}),
    # [ops] ARN operators: each of the six components checked separately, with wildcards
    case(
        "arnlike-match",
        A,
        [cond("ArnLike", "aws:SourceArn", f"arn:aws:states:*:{ACCT}:stateMachine:*")],
        ctx={"aws:SourceArn": f"arn:aws:states:us-east-1:{ACCT}:stateMachine:sm"},
    ),
    case(
        "arnlike-other-account",
        N,
        [cond("ArnLike", "aws:SourceArn", f"arn:aws:states:*:{ACCT}:stateMachine:*")],
        ctx={"aws:SourceArn": f"arn:aws:states:us-east-1:{OTHER}:stateMachine:sm"},
    ),
    # [ops] BinaryEquals compares base64 values
    case("binaryequals", A, [cond("BinaryEquals", "k:bin", "QmluYXJ5")], ctx={"k:bin": "QmluYXJ5"}),
    # [vars] variables in Resource and condition values, from the request context
    case(
        "variable-in-resource",
        A,
        [pol(st("Allow", "s3:GetObject", "arn:aws:s3:::b/${aws:PrincipalAccount}/*"))],
        arn=f"arn:aws:s3:::b/{ACCT}/x",
    ),
    case(
        "variable-in-resource-other",
        N,
        [pol(st("Allow", "s3:GetObject", "arn:aws:s3:::b/${aws:PrincipalAccount}/*"))],
        arn=f"arn:aws:s3:::b/{OTHER}/x",
    ),
    # [vars] "not present ... any attempt to match it fails": a role has no aws:username
    case(
        "variable-missing-key",
        N,
        [pol(st("Allow", "s3:GetObject", "arn:aws:s3:::b/${aws:username}/*"))],
        arn="arn:aws:s3:::b/fn/x",
    ),
    case(
        "variable-default-value",
        A,
        [pol(st("Allow", "s3:GetObject", "arn:aws:s3:::b/${aws:username, 'anon'}/*"))],
        arn="arn:aws:s3:::b/anon/x",
    ),
    case(
        "variable-in-condition",
        A,
        [cond("StringLike", "s3:prefix", "${aws:PrincipalAccount}/*")],
        ctx={"s3:prefix": f"{ACCT}/runs"},
    ),
    # [vars] ${*} is a literal asterisk, not a wildcard
    case(
        "variable-escape-star-literal",
        N,
        [pol(st("Allow", "s3:GetObject", "arn:aws:s3:::b/${*}"))],
        arn="arn:aws:s3:::b/x",
    ),
    case(
        "variable-escape-star-matches-star",
        A,
        [pol(st("Allow", "s3:GetObject", "arn:aws:s3:::b/${*}"))],
        arn="arn:aws:s3:::b/*",
    ),
    # [vars] variables are only substituted under Version 2012-10-17
    case(
        "variable-2008-literal",
        N,
        [pol(st("Allow", "s3:GetObject", "arn:aws:s3:::b/${aws:PrincipalAccount}/*"), version="2008-10-17")],
        arn=f"arn:aws:s3:::b/{ACCT}/x",
    ),
    # unresolvable variable under a negated operator: undecided, so an Allow does not apply
    case(
        "variable-missing-negated-allow",
        N,
        [cond("StringNotEquals", "s3:prefix", "${aws:username}")],
        ctx={"s3:prefix": "x"},
    ),
    case(
        "variable-missing-negated-deny",
        X,
        [ALLOW_ALL_S3, cond("StringNotEquals", "s3:prefix", "${aws:username}", "Deny")],
        ctx={"s3:prefix": "x"},
    ),
    # [eval] same account: an Allow in the resource policy naming the principal suffices
    case(
        "resource-policy-role-arn-matches-session",
        A,
        [],
        pol(st("Allow", "s3:GetObject", OBJ, Principal={"AWS": ROLE})),
    ),
    case(
        "resource-policy-role-arn-matches-role",
        A,
        [],
        pol(st("Allow", "s3:GetObject", OBJ, Principal={"AWS": ROLE})),
        principal=ROLE,
    ),
    case("resource-policy-session-arn", A, [], pol(st("Allow", "s3:GetObject", OBJ, Principal={"AWS": [SESSION]}))),
    case("resource-policy-star", A, [], pol(st("Allow", "s3:GetObject", OBJ, Principal="*"))),
    case("resource-policy-aws-star", A, [], pol(st("Allow", "s3:GetObject", OBJ, Principal={"AWS": "*"}))),
    case(
        "resource-policy-other-role",
        N,
        [],
        pol(st("Allow", "s3:GetObject", OBJ, Principal={"AWS": f"arn:aws:iam::{ACCT}:role/other"})),
    ),
    # a Service principal never matches a role, for Allow ...
    case(
        "resource-policy-service-principal-allow",
        N,
        [],
        pol(st("Allow", "s3:GetObject", OBJ, Principal={"Service": "lambda.amazonaws.com"})),
    ),
    # ... nor for Deny
    case(
        "resource-policy-service-principal-deny",
        A,
        [ALLOW_ALL_S3],
        pol(st("Deny", "s3:GetObject", OBJ, Principal={"Service": "lambda.amazonaws.com"})),
    ),
    # [principal] an account principal "delegates authority to the account": alone it grants nothing
    case(
        "resource-policy-account-principal-alone", N, [], pol(st("Allow", "s3:GetObject", OBJ, Principal={"AWS": ACCT}))
    ),
    case(
        "resource-policy-account-root-alone",
        N,
        [],
        pol(st("Allow", "s3:GetObject", OBJ, Principal={"AWS": f"arn:aws:iam::{ACCT}:root"})),
    ),
    # ... but a Deny naming the account covers every principal in it
    case(
        "resource-policy-account-principal-deny",
        X,
        [ALLOW_ALL_S3],
        pol(st("Deny", "s3:GetObject", OBJ, Principal={"AWS": f"arn:aws:iam::{ACCT}:root"})),
    ),
    # [eval] a statement whose Condition fails does not apply in a resource policy either
    case(
        "resource-policy-condition-fails",
        N,
        [],
        pol(st("Allow", "s3:GetObject", OBJ, Principal="*", Condition={"StringEquals": {"aws:SourceVpce": "vpce-1"}})),
    ),
    # [eval] cross-account: both the identity policy and the resource policy must allow
    case("cross-account-identity-only", N, [ALLOW_ALL_S3], resource_account=OTHER),
    case(
        "cross-account-both",
        A,
        [ALLOW_ALL_S3],
        pol(st("Allow", "s3:GetObject", OBJ, Principal={"AWS": ACCT})),
        resource_account=OTHER,
    ),
    case(
        "cross-account-resource-only",
        N,
        [],
        pol(st("Allow", "s3:GetObject", OBJ, Principal={"AWS": ROLE})),
        resource_account=OTHER,
    ),
    # [notprincipal] Deny + NotPrincipal: AWS checks account, role, then session; list all three
    case(
        "notprincipal-all-listed",
        A,
        [ALLOW_ALL_S3],
        pol(st("Deny", "s3:*", "*", NotPrincipal={"AWS": [f"arn:aws:iam::{ACCT}:root", ROLE, SESSION]})),
    ),
    case("notprincipal-role-only", X, [ALLOW_ALL_S3], pol(st("Deny", "s3:*", "*", NotPrincipal={"AWS": [ROLE]}))),
    case(
        "notprincipal-other",
        X,
        [ALLOW_ALL_S3],
        pol(st("Deny", "s3:*", "*", NotPrincipal={"AWS": [f"arn:aws:iam::{OTHER}:root"]})),
    ),
]


@pytest.mark.parametrize("identity,resource,action,arn,ctx,principal,resource_account,expected", CASES)
def test_documented_decision(
    identity: list[dict[str, Any]],
    resource: dict[str, Any] | None,
    action: str,
    arn: str,
    ctx: dict[str, Any],
    principal: str,
    resource_account: str | None,
    expected: Decision,
) -> None:
    request = AuthzRequest(action, arn, principal, ACCT, ctx)
    res = parse_policy(resource, kind="resource") if resource is not None else None
    verdict = evaluate([parse_policy(p) for p in identity], request, res, resource_account)
    assert verdict.decision is expected
    assert verdict.allowed is (expected is Decision.ALLOW)
    assert (verdict.statement is None) is (expected is Decision.IMPLICIT_DENY)


def test_verdict_names_the_deciding_statement() -> None:
    doc = pol(st(Sid="AllowS3"), st("Deny", "s3:DeleteObject", Sid="NoDelete"))
    request = AuthzRequest("s3:DeleteObject", OBJ, SESSION, ACCT)
    assert evaluate([parse_policy(doc, name="fn-inline")], request) == Verdict(
        Decision.EXPLICIT_DENY, "NoDelete", "identity", "fn-inline"
    )
    get = AuthzRequest("s3:GetObject", OBJ, SESSION, ACCT)
    assert evaluate([parse_policy(doc)], get).statement == "AllowS3"
    no_sid = parse_policy(pol(st("Allow", "sqs:*"), st()))
    assert evaluate([no_sid], get).statement == "1"  # the index when there is no Sid
    tls = evaluate(
        [parse_policy(ALLOW_ALL_S3)],
        AuthzRequest("s3:GetObject", OBJ, SESSION, ACCT, {"aws:SecureTransport": "false"}),
        parse_policy(TLS_ONLY, kind="resource"),
    )
    assert (tls.decision, tls.source, tls.statement) == (Decision.EXPLICIT_DENY, "resource", "0")


def test_parse_accepts_dict_json_and_url_encoded_json() -> None:
    doc = pol(st("Allow", "s3:GetObject", "arn:aws:s3:::b/a+b c/*", Sid="S1"))
    text = json.dumps(doc)
    encoded = quote(text, safe="")  # how IAM GetRolePolicy / GetPolicyVersion return documents
    assert encoded.startswith("%7B")
    parsed = [parse_policy(doc), parse_policy(text), parse_policy(encoded), parse_policy(encoded.encode())]
    assert parsed[0] == parsed[1] == parsed[2] == parsed[3]
    assert parsed[2].statements[0].resources == ("arn:aws:s3:::b/a+b c/*",)
    single = parse_policy(
        {"Version": "2008-10-17", "Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}}
    )
    assert len(single.statements) == 1 and not single.variables


def _bad(statement: dict[str, Any], *more: dict[str, Any]) -> dict[str, Any]:
    return pol(st("Allow", "s3:GetObject", OBJ, Sid="Fine"), {"Sid": "Broken", **statement}, *more)


def _rbad(statement: dict[str, Any]) -> dict[str, Any]:
    return pol(st("Allow", "s3:GetObject", OBJ, Sid="Fine", Principal="*"), {"Sid": "Broken", **statement})


@pytest.mark.parametrize(
    "doc,kind,message",
    [
        (_bad({"Effect": "Allow", "Action": "s3:GetObject"}), "identity", "needs Resource"),
        (_bad(st(Condition={"StringEqualz": {"s3:prefix": "a"}})), "identity", "unknown condition operator"),
        (_bad(st(Condition={"ForSomeValues:StringEquals": {"s3:prefix": "a"}})), "identity", "set operator"),
        (_bad(st(Condition={"ForAnyValue:Null": {"s3:prefix": "true"}})), "identity", "unknown condition operator"),
        (_bad(st(Condition={"NullIfExists": {"s3:prefix": "true"}})), "identity", "unknown condition operator"),
        (_bad(st(Condition={"NumericLessThan": {"s3:max-keys": "ten"}})), "identity", "not a valid Numeric"),
        (_bad(st(Condition={"DateLessThan": {"aws:CurrentTime": "soon"}})), "identity", "not a valid Date"),
        (_bad(st(Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/33"}})), "identity", "not a valid Ip"),
        (_bad(st(Condition={"Bool": {"aws:SecureTransport": "yes"}})), "identity", "not a valid Bool"),
        (_bad(st(Condition={"StringEquals": {"s3:prefix": []}})), "identity", "empty list"),
        (_bad(st(Condition={"StringEquals": {"s3:prefix": {"a": 1}}})), "identity", "must be a string"),
        (_bad(st("Permit")), "identity", "Effect"),
        (_bad({**st(), "NotAction": "s3:PutObject"}), "identity", "both Action and NotAction"),
        (_bad({**st(), "NotResource": BUCKET}), "identity", "both Resource and NotResource"),
        (_bad({"Effect": "Allow", "Resource": "*"}), "identity", "needs Action"),
        (_bad(st("Allow", "s3")), "identity", "not an action"),
        (_bad(st("Allow", "s3:*", "bucket/*")), "identity", "must be an ARN"),
        (_bad(st("Allow", "s3:*", "arn:aws:s3")), "identity", "must be an ARN"),
        (_bad(st(Principal="*")), "identity", "cannot name a Principal"),
        (_bad(st(Actions="s3:*")), "identity", "unknown element"),
        (_bad(st(), st(Sid="Broken")), "identity", "Sid must be unique"),
        (_rbad(st()), "resource", "needs Principal"),
        (_rbad(st(NotPrincipal={"AWS": ROLE})), "resource", "only supported with Effect Deny"),
        (_rbad(st("Deny", Principal={"AWS": ROLE}, NotPrincipal={"AWS": ROLE})), "resource", "both Principal"),
        (_rbad(st(Principal={"AWS": f"arn:aws:iam::{ACCT}:role/*"})), "resource", "wildcard in principal"),
        (_rbad(st(Principal={"Human": "bob"})), "resource", "unknown principal type"),
        (_rbad(st(Principal="bob")), "resource", "Principal must be"),
    ],
)
def test_malformed_statement_raises_naming_it(doc: dict[str, Any], kind: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message) as err:
        parse_policy(doc, kind=kind)  # type: ignore[arg-type]
    assert re.search(r"^Statement\[[12]\] \(Sid 'Broken'\): ", str(err.value))


@pytest.mark.parametrize(
    "doc,message",
    [
        ("{not json", "not valid JSON"),
        ("%7Bnot%20json", "not valid JSON"),
        ("[]", "JSON object"),
        ({"Version": "2012-10-17"}, "no Statement"),
        ({"Version": "2014-01-01", "Statement": []}, "Version"),
        ({"Version": "2012-10-17", "Statement": [], "Extra": 1}, "unknown element"),
        ({"Version": "2012-10-17", "Statement": ["s3:*"]}, r"Statement\[0\]: must be an object"),
    ],
)
def test_malformed_document_raises(doc: Any, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        parse_policy(doc)


def test_policy_kinds_are_not_interchangeable() -> None:
    request = AuthzRequest("s3:GetObject", OBJ, SESSION, ACCT)
    with pytest.raises(PolicyError):
        evaluate([], request, parse_policy(ALLOW_ALL_S3))
    with pytest.raises(PolicyError):
        evaluate([parse_policy(TLS_ONLY, kind="resource")], request)
