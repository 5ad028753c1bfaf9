"""A small, strict AWS IAM policy evaluator (standard library only, Python 3.11+).

The LocalStack gateway authorizes each call a Lambda role (or the Step Functions role) makes with
`evaluate`, so that the local cloud refuses what AWS would refuse. Where the AWS documentation leaves
a case open we resolve it towards refusal: conditions are evaluated in three-valued logic
(True / False / None = "cannot tell"), and a statement that cannot be told applies if it is a Deny
and does not if it is an Allow. Permissions boundaries, session policies and SCPs are the caller's.
"""

from __future__ import annotations

import base64
import enum
import ipaddress
import json
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any, Literal
from urllib.parse import unquote, unquote_plus

Tri = bool | None
# identity policies (a role's) name no Principal; resource policies (a bucket's) must
PolicyKind = Literal["identity", "resource"]
# A request's condition-key value: text as AWS sends it, or a bool or number given by a caller
# (stringified as AWS would: true/false, str()), or several values for a multivalued key.
ContextValue = str | bool | int | float | Sequence[str]
Context = dict[str, tuple[str, ...]]
Principals = tuple[tuple[str, str], ...]  # (type, value) pairs; Principal "*" is (("AWS", "*"),)


class PolicyError(ValueError):
    """A malformed policy document (AWS would reject it); the message says where."""


_ORD: dict[str, Callable[[Any, Any], bool]] = {
    "Equals": operator.eq,
    "LessThan": operator.lt,
    "LessThanEquals": operator.le,
    "GreaterThan": operator.gt,
    "GreaterThanEquals": operator.ge,
    "In": lambda a, net: a.version == net.version and a.subnet_of(net),
}
# operator -> (family, detail, negated); a negated operator is the NOR of its positive twin
_OPS: dict[str, tuple[str, str, bool]] = {
    "StringEquals": ("String", "eq", False),
    "StringNotEquals": ("String", "eq", True),
    "StringEqualsIgnoreCase": ("String", "ieq", False),
    "StringNotEqualsIgnoreCase": ("String", "ieq", True),
    "StringLike": ("String", "like", False),
    "StringNotLike": ("String", "like", True),
    "Bool": ("Bool", "Equals", False),
    "BinaryEquals": ("Binary", "Equals", False),
    "IpAddress": ("Ip", "In", False),
    "NotIpAddress": ("Ip", "In", True),
    "ArnEquals": ("Arn", "", False),
    "ArnLike": ("Arn", "", False),
    "ArnNotEquals": ("Arn", "", True),
    "ArnNotLike": ("Arn", "", True),
}
for _fam in ("Numeric", "Date"):
    _OPS.update({_fam + s: (_fam, s, False) for s in list(_ORD)[:5]})
    _OPS[_fam + "NotEquals"] = (_fam, "Equals", True)
_STATEMENT_KEYS = {
    "Sid",
    "Effect",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Principal",
    "NotPrincipal",
    "Condition",
}
_ACTION = re.compile(r"[A-Za-z0-9-]+:[A-Za-z0-9*?_.-]+")
_VAR = re.compile(r"\$\{([^}]*)\}")
_VAR_DEFAULT = re.compile(r"\s*([^\s,]+)\s*,\s*'((?:[^']|'')*)'\s*")
_ACCOUNT = re.compile(r"(?:arn:[\w-]+:iam::)?(\d{12})(?::root)?")
_ROLE = re.compile(r"arn:([\w-]+):iam::(\d{12}):role/(?:.*/)?([^/]+)")
_SESSION = re.compile(r"arn:([\w-]+):sts::(\d{12}):assumed-role/([^/]+)/(.+)")


def _or_none(fn: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(s: str) -> Any:
        try:
            return fn(s.strip())
        except (ValueError, ArithmeticError, OSError):  # binascii, ipaddress, Decimal, datetime errors
            return None

    return parse


def _date(s: str) -> datetime:
    """ISO 8601 or epoch seconds (aws:EpochTime); a time without a zone is UTC."""
    d = datetime.fromtimestamp(float(s), UTC) if re.fullmatch(r"-?\d+(\.\d+)?", s) else datetime.fromisoformat(s)
    return d if d.tzinfo else d.replace(tzinfo=UTC)


_PARSE: dict[str, Callable[[str], Any]] = {
    "Numeric": _or_none(lambda s: Decimal(s) if Decimal(s).is_finite() else None),
    "Date": _or_none(_date),
    "Bool": lambda s: {"true": True, "false": False}.get(s.strip().lower()),
    "Binary": _or_none(lambda s: base64.b64decode(s, validate=True)),
    "Ip": _or_none(lambda s: ipaddress.ip_network(s, strict=False)),
}


def _check(ok: object, where: str, problem: str) -> None:
    if not ok:
        raise PolicyError(f"{where}: {problem}")


@dataclass(frozen=True)
class Condition:
    family: str
    detail: str
    negated: bool
    if_exists: bool
    set_op: str | None  # "ForAllValues" | "ForAnyValue" | None
    key: str  # lower-cased: condition key names are case-insensitive
    values: tuple[str, ...]


@dataclass(frozen=True)
class Statement:
    index: int
    sid: str | None
    effect: Literal["Allow", "Deny"]
    actions: tuple[str, ...]
    not_action: bool
    resources: tuple[str, ...] | None  # None: the resource the (resource) policy is attached to
    not_resource: bool
    principal: Principals | None  # None in identity policies
    not_principal: bool
    conditions: tuple[Condition, ...]

    @property
    def label(self) -> str:
        return self.sid if self.sid else str(self.index)


@dataclass(frozen=True)
class Policy:
    statements: tuple[Statement, ...]
    version: str = "2008-10-17"
    kind: PolicyKind = "identity"
    name: str | None = None

    @property
    def variables(self) -> bool:
        """Policy variables exist only in version 2012-10-17; in 2008-10-17 `${...}` is literal text."""
        return self.version == "2012-10-17"


def _strings(value: Any, where: str, what: str) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    for v in items:
        _check(isinstance(v, (str, int, float)), where, f"{what} must be a string or a list of strings, got {v!r}")
    _check(items, where, f"{what} is an empty list")
    return tuple(("true" if v else "false") if isinstance(v, bool) else str(v) for v in items)


def _split_arn(text: str, variables: bool) -> list[str] | None:
    """The six colon-separated parts of an ARN (pattern); colons inside `${...}` do not split."""
    parts: list[str] = []
    start, in_var = 0, False
    for i, ch in enumerate(text):
        if variables and ch == "{" and text[i - 1 : i] == "$":
            in_var = True
        elif ch == "}":
            in_var = False
        elif ch == ":" and not in_var and len(parts) < 5:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts if len(parts) == 6 and parts[0] == "arn" else None


def _conditions(block: Any, where: str, variables: bool) -> tuple[Condition, ...]:
    _check(isinstance(block, dict), where, "Condition must be an object")
    out: list[Condition] = []
    for op, keys in block.items():
        set_op, _, base = op.rpartition(":")
        _check(set_op in ("", "ForAllValues", "ForAnyValue"), where, f"unknown condition set operator in {op!r}")
        if_exists = base.endswith("IfExists") and base != "IfExists"
        name = base.removesuffix("IfExists") if if_exists else base
        spec = ("Null", "", False) if name == "Null" and not (if_exists or set_op) else _OPS.get(name)
        _check(spec, where, f"unknown condition operator {op!r}")
        _check(isinstance(keys, dict) and keys, where, f"{op} must map condition keys to values")
        assert spec is not None
        family = spec[0]
        for key, raw in keys.items():
            values = _strings(raw, where, f"{op} {key}")
            for v in values:
                ok = (
                    (v == "*" or _split_arn(v, variables))
                    if family == "Arn"
                    else family == "String" or _PARSE["Bool" if family == "Null" else family](v) is not None
                )
                _check(ok, where, f"{op} {key}: {v!r} is not a valid {family} value")
            out.append(Condition(*spec, if_exists, set_op or None, str(key).lower(), values))
    return tuple(out)


def _principals(value: Any, where: str) -> Principals:
    if value == "*":
        return (("AWS", "*"),)
    _check(isinstance(value, dict) and value, where, 'Principal must be "*" or an object such as {"AWS": ...}')
    out: list[tuple[str, str]] = []
    for ptype, raw in value.items():
        _check(ptype in ("AWS", "Service", "Federated", "CanonicalUser"), where, f"unknown principal type {ptype!r}")
        for v in _strings(raw, where, f"Principal {ptype}"):  # AWS allows no partial wildcards here
            _check(v == "*" or not ("*" in v or "?" in v), where, f"wildcard in principal {v!r}")
            out.append((ptype, v))
    return tuple(out)


def _statement(i: int, st: Any, kind: PolicyKind, variables: bool) -> Statement:
    sid = st.get("Sid") if isinstance(st, dict) else None
    where = f"Statement[{i}]" + (f" (Sid {sid!r})" if sid else "")
    _check(isinstance(st, dict), where, "must be an object")
    _check(not set(st) - _STATEMENT_KEYS, where, f"unknown element(s) {sorted(set(st) - _STATEMENT_KEYS)}")
    _check(sid is None or isinstance(sid, str), where, "Sid must be a string")
    effect = st.get("Effect")
    _check(effect in ("Allow", "Deny"), where, f'Effect must be "Allow" or "Deny", got {effect!r}')
    for a in ("Action", "Resource", "Principal"):
        _check(not (a in st and "Not" + a in st), where, f"has both {a} and Not{a}")
    has = {a: a in st or "Not" + a in st for a in ("Action", "Resource", "Principal")}
    _check(has["Action"], where, "needs Action or NotAction")
    _check(
        kind != "identity" or (has["Resource"] and not has["Principal"]),
        where,
        "an identity policy needs Resource or NotResource and cannot name a Principal",
    )
    _check(kind != "resource" or has["Principal"], where, "a resource policy needs Principal or NotPrincipal")
    _check(effect == "Deny" or "NotPrincipal" not in st, where, "NotPrincipal is only supported with Effect Deny")
    actions = _strings(st.get("Action", st.get("NotAction")), where, "Action")
    for a in actions:
        _check(a == "*" or _ACTION.fullmatch(a), where, f"{a!r} is not an action (service:Name or *)")
    resources = _strings(st.get("Resource", st.get("NotResource")), where, "Resource") if has["Resource"] else None
    for r in resources or ():
        _check(r == "*" or _split_arn(r, variables), where, f'resource {r!r} must be an ARN or "*"')
    principal = _principals(st.get("Principal", st.get("NotPrincipal")), where) if has["Principal"] else None
    conditions = _conditions(st["Condition"], where, variables) if "Condition" in st else ()
    return Statement(
        i,
        sid,
        effect,
        actions,
        "NotAction" in st,
        resources,
        "NotResource" in st,
        principal,
        "NotPrincipal" in st,
        conditions,
    )


def parse_policy(
    doc: str | bytes | Mapping[str, Any], *, kind: PolicyKind = "identity", name: str | None = None
) -> Policy:
    """Parse and validate a policy given as a dict, JSON text, or URL-encoded JSON text (as IAM
    returns documents). kind="identity" requires Resource and forbids Principal; kind="resource"
    (bucket, queue, key policies) requires Principal/NotPrincipal, Resource defaulting to itself."""
    data: Any = doc
    if not isinstance(doc, Mapping):
        text = (doc.decode() if isinstance(doc, bytes) else doc).strip()
        for candidate in [text] if text.startswith("{") else [unquote(text), unquote_plus(text)]:
            try:
                data = json.loads(candidate)
                break
            except json.JSONDecodeError as exc:
                error = exc
        else:
            raise PolicyError(f"policy is not valid JSON: {error}")
    _check(isinstance(data, Mapping), "policy", "must be a JSON object")
    extra = set(data) - {"Version", "Id", "Statement"}
    _check(not extra, "policy", f"unknown element(s) {sorted(extra)}")
    version = data.get("Version", "2008-10-17")
    _check(
        version in ("2012-10-17", "2008-10-17"), "policy", f"Version must be 2012-10-17 or 2008-10-17, got {version!r}"
    )
    _check("Statement" in data, "policy", "no Statement")
    raw = data["Statement"] if isinstance(data["Statement"], list) else [data["Statement"]]
    statements = tuple(_statement(i, st, kind, version == "2012-10-17") for i, st in enumerate(raw))
    sids = [s.sid for s in statements]
    for s in statements:
        _check(
            s.sid is None or sids.count(s.sid) < 2,
            f"Statement[{s.index}] (Sid {s.sid!r})",
            "Sid must be unique in the policy",
        )
    return Policy(statements, version, kind, name)


@dataclass(frozen=True)
class AuthzRequest:
    action: str  # "s3:GetObject"
    resource: str  # full ARN, or "*" for actions without resource-level permissions
    principal_arn: str  # the role ARN, or better the sts assumed-role session ARN (see NotPrincipal)
    principal_account: str
    context: Mapping[str, ContextValue] = field(default_factory=dict)


class Decision(enum.Enum):
    ALLOW = "Allow"
    EXPLICIT_DENY = "ExplicitDeny"
    IMPLICIT_DENY = "ImplicitDeny"


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    statement: str | None  # Sid, or index within its policy, of the deciding statement
    source: Literal["identity", "resource"] | None = None
    policy: str | None = None  # the deciding policy's name, as given to parse_policy

    @property
    def allowed(self) -> bool:
        return self.decision is Decision.ALLOW


def _any(results: Iterable[Tri]) -> Tri:
    unknown = False
    for r in results:
        if r:
            return True
        unknown = unknown or r is None
    return None if unknown else False


def _not(r: Tri) -> Tri:
    return None if r is None else not r


def _all(results: Iterable[Tri]) -> Tri:
    return _not(_any(_not(r) for r in results))


@lru_cache(maxsize=4096)
def _glob(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(body, re.S | (re.I if ignore_case else 0))


def _expand(text: str, ctx: Context, variables: bool, wildcard: bool) -> str | None:
    """Substitute policy variables. With `wildcard`, return a regex in which only the policy's own
    `*` and `?` are wildcards (`${*}`, `${?}`, `${$}` and substituted values are literal). None: a
    variable without a (single) value, which AWS documents as "any attempt to match it fails"."""
    conv: Callable[[str], str] = (lambda s: _glob(s, False).pattern) if wildcard else str
    lit: Callable[[str], str] = re.escape if wildcard else str
    out: list[str] = []
    pos = 0
    for m in _VAR.finditer(text) if variables else ():
        out.append(conv(text[pos : m.start()]))
        inner, pos = m.group(1), m.end()
        dm = _VAR_DEFAULT.fullmatch(inner)
        key, default = (dm[1], dm[2].replace("''", "'")) if dm else (inner.strip(), None)
        vals = ctx.get(key.lower())
        value = inner if inner in ("*", "?", "$") else vals[0] if vals and len(vals) == 1 else default
        if value is None:
            return None
        out.append(lit(value))
    return "".join(out) + conv(text[pos:])


def _arn_match(pattern: str, arn: str, ctx: Context, variables: bool) -> Tri:
    """Each of the six ARN parts is matched on its own; the last (resource) part keeps its own
    colons and slashes, so `b/*` covers `b/x/y:z` while `*` in the account part stays in it."""
    if pattern == "*":
        return True
    pat, got = _split_arn(pattern, variables), arn.split(":", 5)
    if pat is None or len(got) != 6:
        return None if pat is None else False
    result: Tri = True
    for p, g in zip(pat, got, strict=True):
        rx = _expand(p, ctx, variables, wildcard=True)
        if rx is None:
            result = None
        elif not re.fullmatch(rx, g, re.S):
            return False
    return result


def _compare(c: Condition, actual: str, expected: str, ctx: Context, variables: bool) -> Tri:
    """One request value against one policy value; None when it cannot be compared."""
    if c.family == "String":
        pat = _expand(expected, ctx, variables, wildcard=c.detail == "like")
        if pat is None or c.detail == "like":
            return None if pat is None else re.fullmatch(pat, actual, re.S) is not None
        return pat.casefold() == actual.casefold() if c.detail == "ieq" else pat == actual
    if c.family == "Arn":
        return None if len(actual.split(":", 5)) != 6 else _arn_match(expected, actual, ctx, variables)
    parse = _PARSE[c.family]
    a = parse(actual)
    return None if a is None else _ORD[c.detail](a, parse(expected))


def _condition(c: Condition, ctx: Context, variables: bool) -> Tri:
    """AWS: a missing key makes a positive operator false and a negated one true; ...IfExists is
    true when the key is missing; ForAllValues is true and ForAnyValue false on a missing/empty key.
    A multivalued key without a set operator (AWS: it "requires" one) is true only if it would be
    under both ForAnyValue and ForAllValues, false only if under neither, else undecided."""
    actual = ctx.get(c.key)
    if c.family == "Null":
        return any((actual is None) == (v.lower() == "true") for v in c.values)
    if actual is None:
        return True if c.if_exists or c.set_op == "ForAllValues" else False if c.set_op else c.negated

    def one(a: str) -> Tri:
        r = _any(_compare(c, a, e, ctx, variables) for e in c.values)
        return _not(r) if c.negated else bool(r)  # positive: an uncomparable value fails to match

    results = [one(a) for a in actual]
    if c.set_op == "ForAllValues":
        return _all(results)
    some, every = _any(results), _all(results)
    return some if c.set_op == "ForAnyValue" or some == every else None


def _context(req: AuthzRequest, resource_account: str | None) -> Context:
    ctx: Context = {}
    for k, v in req.context.items():
        if k.lower() in ctx:
            raise ValueError(f"context key {k!r} given twice (keys are case-insensitive)")
        vals = [v] if isinstance(v, (str, bool, int, float)) else list(v)
        strs = tuple(("true" if x else "false") if isinstance(x, bool) else str(x) for x in vals)
        if strs:  # an empty multivalued key counts as missing
            ctx[k.lower()] = strs
    session = _SESSION.fullmatch(req.principal_arn)
    role_arn = f"arn:{session[1]}:iam::{session[2]}:role/{session[3]}" if session else req.principal_arn
    ctx.setdefault("aws:principalarn", (role_arn,))  # (a session's role path is unknown here)
    ctx.setdefault("aws:principalaccount", (req.principal_account,))
    if resource_account:
        ctx.setdefault("aws:resourceaccount", (resource_account,))
    return ctx


def _principal(pairs: Principals, req: AuthzRequest) -> str | None:
    """'direct' (grants on its own), 'account' (the caller's account: AWS treats that as delegating
    to the account, so an Allow still needs an identity-policy Allow) or None. Service, Federated
    and CanonicalUser principals never match an IAM role."""
    session = _SESSION.fullmatch(req.principal_arn)
    found: str | None = None
    for v in (v for t, v in pairs if t == "AWS"):
        acct, role = _ACCOUNT.fullmatch(v), _ROLE.fullmatch(v)
        if v in ("*", req.principal_arn):
            return "direct"
        if role and session and role.groups() == session.groups()[:3]:
            return "direct"  # a role ARN also names every assumed-role session of that role
        if acct and acct[1] == req.principal_account:
            found = "account"
    return found


def _spared_by_not_principal(pairs: Principals, req: AuthzRequest) -> bool:
    """Deny+NotPrincipal spares the caller only if every identity AWS checks is listed: the account
    and, for a role session, the role ARN and the session ARN (AWS's documented example lists all
    three). Given only a role ARN the session is unknown, so nothing spares it (stricter)."""
    values = {v for t, v in pairs if t == "AWS"}
    account = any((m := _ACCOUNT.fullmatch(v)) and m[1] == req.principal_account for v in values)
    session = _SESSION.fullmatch(req.principal_arn)
    if "*" in values or not account:
        return "*" in values
    if session:
        role = any((m := _ROLE.fullmatch(v)) and m.groups() == session.groups()[:3] for v in values)
        return role and req.principal_arn in values
    if _ROLE.fullmatch(req.principal_arn):
        return False
    return req.principal_arn in values or _ACCOUNT.fullmatch(req.principal_arn) is not None


def _applies(st: Statement, req: AuthzRequest, ctx: Context, variables: bool) -> Tri:
    if any(_glob(a, True).fullmatch(req.action) for a in st.actions) == st.not_action:
        return False
    hit: Tri = True
    if st.resources is not None:
        hit = _any(_arn_match(r, req.resource, ctx, variables) for r in st.resources)
        hit = _not(hit) if st.not_resource else bool(hit)  # an unresolved variable fails to match
    if hit is False:
        return False
    return _all([hit, *(_condition(c, ctx, variables) for c in st.conditions)])


def evaluate(
    identity_policies: Sequence[Policy],
    request: AuthzRequest,
    resource_policy: Policy | None = None,
    resource_account: str | None = None,
) -> Verdict:
    """AWS policy evaluation: an explicit Deny in any policy wins; else, in one account, an Allow
    from an identity policy or from a resource-policy statement naming the caller; across accounts
    (resource_account differs) both sides must allow; else implicit deny. A statement that cannot
    be decided (see `_condition`) counts as applying when it denies and not when it allows."""
    if ":" not in request.action:
        raise ValueError(f"action {request.action!r} is not service:Name")
    ctx = _context(request, resource_account)
    allow: Verdict | None = None
    direct: Verdict | None = None
    delegated: Verdict | None = None
    sources: list[tuple[Policy, Literal["identity", "resource"]]] = [(p, "identity") for p in identity_policies]
    if resource_policy is not None:
        sources.append((resource_policy, "resource"))
    for pol, source in sources:
        if pol.kind != source:
            raise PolicyError(f"policy {pol.name or ''} was parsed as {pol.kind} but passed as {source} policy")
        for st in pol.statements:
            who: str | None = "direct"
            if st.principal is not None and not st.not_principal:
                who = _principal(st.principal, request)
            elif st.principal is not None and _spared_by_not_principal(st.principal, request):
                who = None
            hit = _applies(st, request, ctx, pol.variables) if who else False
            verdict = Verdict(Decision.ALLOW, st.label, source, pol.name)
            if st.effect == "Deny" and hit is not False:
                return Verdict(Decision.EXPLICIT_DENY, st.label, source, pol.name)
            if hit and source == "identity":
                allow = allow or verdict
            elif hit and who == "direct":
                direct = direct or verdict
            elif hit:
                delegated = delegated or verdict
    if resource_account is None or resource_account == request.principal_account:
        decided = allow or direct
    else:
        decided = allow if allow and (direct or delegated) else None
    return decided or Verdict(Decision.IMPLICIT_DENY, None)
