"""`python -m deploy.stack`: deploy, plan, destroy and query the cosmic-ai stack per target.

Order of a deploy: ECR repositories, then images (built and pushed on AWS or when the
local executor runs containers), then everything else.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from . import tfvars
from .ecr import empty_repositories, repositories_in_state
from .errors import DeployError
from .images import build_images, local_image_uris, local_tags, push_images, read_built_refs, read_built_tags
from .regions import ResolvedRegion, check_same_region, deployed_region, resolve_region
from .targets import TARGETS, Target
from .terraform_cli import TerraformWorkspace

ROOT = Path(__file__).resolve().parents[2]


def _workspace(args: argparse.Namespace) -> TerraformWorkspace:
    mirror = Path(args.plugin_mirror) if args.plugin_mirror else None
    state_root = Path(args.state_dir).resolve() / "terraform"
    return TerraformWorkspace(
        module_dir=ROOT / "terraform",
        state_dir=state_root / args.target,
        plugin_mirror=mirror,
        binary=args.terraform,
    )


def _region(args: argparse.Namespace, *, deployed_first: bool) -> ResolvedRegion:
    """The region by deploy.regions' order; with `deployed_first`, the deployed stack's own
    region when there is one (destroy, invoke and logs act on that stack, wherever it is)."""
    if deployed_first:
        deployed = deployed_region(_workspace(args).state_file)
        if deployed:
            return ResolvedRegion(deployed, "the deployed stack's Terraform state")
    return resolve_region(args.target, args.region)


def _target(args: argparse.Namespace, *, deployed_first: bool = True) -> Target:
    """The target; for deploy and plan (deployed_first=False) the region must match the state's."""
    resolved = _region(args, deployed_first=deployed_first)
    if not deployed_first:
        check_same_region(resolved, _workspace(args).state_file, args.target)
        print(f"{args.cmd}: region {resolved.region} (from {resolved.source})", flush=True)
    return Target.from_settings(args.target, resolved.region, args.endpoint)


def _var_file(args: argparse.Namespace) -> Path:
    """The tfvars file: --var-file, else terraform/examples/<target>.tfvars."""
    return Path(args.var_file) if args.var_file else ROOT / "terraform/examples" / f"{args.target}.tfvars"


def _architecture(args: argparse.Namespace) -> str:
    """The functions' `architecture` (the images' docker --platform) from the tfvars."""
    return tfvars.architecture(tfvars.settings(ROOT, _var_file(args)))


def _uses_real_images(target: Target) -> bool:
    """Images are needed on AWS, and locally only when the executor runs containers."""
    return not target.is_local or os.environ.get("COSMICAI_EXECUTOR_MODE", "process") == "docker"


def _var_args(args: argparse.Namespace, target: Target, tags: dict[str, str]) -> list[str]:
    out: list[str] = []
    var_file = _var_file(args)
    if var_file.is_file():
        out.append(f"-var-file={var_file.resolve()}")
    out += [
        f"-var=aws_region={target.region}",
        f"-var=localstack_endpoint={target.endpoint}",
        f"-var=inference_image_tag={tags['inference']}",
        f"-var=orchestration_image_tag={tags['orchestration']}",
    ]
    return out


def _local_image_uri_args(ws: TerraformWorkspace, target: Target) -> list[str]:
    """Locally with the docker executor: point the functions at the local builds (once the
    repositories exist), so any name_prefix works; nothing otherwise."""
    if not (target.is_local and _uses_real_images(target) and ws.state_file.exists()):
        return []
    try:
        urls = _ecr_urls_from_state(ws)
    except DeployError:
        return []  # no repositories yet: a plan before the first deploy
    uris = local_image_uris(urls, read_built_refs(ROOT / "build/images.json"))
    return [f"-var={name}_image_uri={uri}" for name, uri in uris.items()]


def _tags(args: argparse.Namespace, target: Target, *, build: bool) -> dict[str, str]:
    if not _uses_real_images(target):
        return local_tags()
    if build:
        build_images(args.make, ROOT, target.name, _architecture(args))
    return read_built_tags(ROOT / "build/images.json")


def cmd_deploy(args: argparse.Namespace) -> int:
    """Apply the stack in dependency order; a second run with no change changes nothing."""
    target = _target(args, deployed_first=False)
    print(f"deploy: target {target.name}: {target.check_reachable()}", flush=True)
    ws = _workspace(args)
    tags = _tags(args, target, build=True)
    ws.init()
    var_args = _var_args(args, target, tags)
    if _uses_real_images(target):
        # Repositories must exist before images can be pushed into them.
        ws.run("apply", "-input=false", "-auto-approve", "-compact-warnings", "-target=module.ecr", *var_args)
        if not target.is_local:
            output = ws.outputs().get("ecr_repository_urls")
            urls = {str(k): str(v) for k, v in output.items()} if isinstance(output, dict) and output else None
            urls = urls or _ecr_urls_from_state(ws)
            push_images(args.make, ROOT, urls, target.client_environment(), target.name, _architecture(args))
            # The functions must name what was pushed (the push re-runs `make images`).
            var_args = _var_args(args, target, read_built_tags(ROOT / "build/images.json"))
    ws.run("apply", "-input=false", "-auto-approve", "-compact-warnings", *var_args, *_local_image_uri_args(ws, target))
    outputs = ws.outputs()
    print(json.dumps({k: outputs.get(k) for k in ("state_machine_arn", "data_uri", "results_uri")}, indent=2))
    return 0


def _ecr_urls_from_state(ws: TerraformWorkspace) -> dict[str, str]:
    """Repository URLs after a targeted apply (root outputs may not be written yet)."""
    proc = ws.run("show", "-json", "-no-color", capture=True)
    urls: dict[str, str] = {}
    modules = json.loads(proc.stdout).get("values", {}).get("root_module", {}).get("child_modules", [])
    for module in modules:
        for res in module.get("resources", []):
            if res.get("type") == "aws_ecr_repository":
                urls[res["index"]] = res["values"]["repository_url"]
    if not urls:
        raise DeployError("no ECR repositories in the state after the targeted apply")
    return urls


def cmd_plan(args: argparse.Namespace) -> int:
    """Show what a deploy would change; with --detailed-exitcode 0 = none, 2 = changes."""
    target = _target(args, deployed_first=False)
    target.check_reachable()
    ws = _workspace(args)
    ws.init()
    extra = ["-detailed-exitcode"] if args.detailed_exitcode else []
    var_args = [*_var_args(args, target, _tags(args, target, build=False)), *_local_image_uri_args(ws, target)]
    proc = ws.run("plan", "-input=false", "-compact-warnings", *extra, *var_args, check=False)
    if proc.returncode not in (0, 2) or (proc.returncode == 2 and not args.detailed_exitcode):
        raise DeployError(f"terraform plan failed (exit {proc.returncode}); see its output above")
    return proc.returncode


def cmd_destroy(args: argparse.Namespace) -> int:
    """Destroy everything the target's state holds."""
    ws = _workspace(args)
    if not ws.state_file.exists():
        print(f"destroy: nothing deployed for target {args.target} ({ws.state_file} absent)")
        return 0
    target = _target(args)
    print(f"destroy: target {target.name}: {target.check_reachable()}", flush=True)
    # ECR refuses to delete repositories that hold images: empty the stack's own first.
    repos = repositories_in_state(ws.state_file)
    if repos:
        empty_repositories(target.client("ecr"), repos)
    ws.init()
    # Image tags do not matter for destroy; any valid value will do.
    tags = {"inference": "destroy", "orchestration": "destroy"}
    ws.run("destroy", "-input=false", "-auto-approve", "-compact-warnings", *_var_args(args, target, tags))
    return 0


def cmd_output(args: argparse.Namespace) -> int:
    """Print one output (plain string or JSON) or all outputs as JSON."""
    outputs = _workspace(args).outputs()
    if not outputs:
        raise DeployError(f"nothing is deployed for target {args.target}: run `make deploy TARGET={args.target}`")
    if args.name is None:
        print(json.dumps(outputs, indent=2))
        return 0
    if args.name not in outputs:
        raise DeployError(f"no output {args.name!r}; known: {', '.join(sorted(outputs))}")
    value = outputs[args.name]
    print(value if isinstance(value, str) else json.dumps(value))
    return 0


def cmd_exec(args: argparse.Namespace) -> int:
    """Run a command with AWS client settings for the target and the outputs as env vars."""
    if not args.command:
        raise DeployError("exec needs a command after --")
    target = _target(args)
    env = target.client_environment()
    for name, value in _workspace(args).outputs().items():
        env[f"COSMICAI_TF_{name.upper()}"] = value if isinstance(value, str) else json.dumps(value)
    command = args.command[1:] if args.command[0] == "--" else args.command
    return subprocess.run(command, env=env).returncode


def _plan_json(args: argparse.Namespace, target: Target) -> list[str]:
    """`terraform plan -json` lines for what a deploy would do (read-only: no lock, no plan file)."""
    ws = _workspace(args)
    ws.init()
    try:
        tags = _tags(args, target, build=False)
    except DeployError:
        tags = {"inference": "preflight", "orchestration": "preflight"}  # nothing built yet: any valid tag
    var_args = [*_var_args(args, target, tags), *_local_image_uri_args(ws, target)]
    proc = ws.run("plan", "-input=false", "-lock=false", "-json", *var_args, check=False, capture=True)
    lines = proc.stdout.splitlines()
    if proc.returncode != 0:
        errors = [
            json.loads(line).get("@message", "")
            for line in lines
            if line.startswith("{") and json.loads(line).get("@level") == "error"
        ]
        raise DeployError("terraform plan failed: " + ("; ".join(errors) or proc.stderr.strip()[-500:]))
    return lines


def cmd_preflight(args: argparse.Namespace) -> int:
    """Check credentials, region, Docker, base image, wheels and quotas; show the plan and idle cost.

    Changes nothing."""
    from . import preflight

    settings = tfvars.settings(ROOT, _var_file(args))
    build = preflight.images_tools()[0]
    runtime = build.runtime_image_for(args.base_image, args.runtime_image or None)  # as `make images` picks it
    ctx = preflight.Context(
        target=args.target,
        explicit_region=args.region,
        endpoint=args.endpoint,
        state_file=_workspace(args).state_file,
        settings=settings,
        uses_images=args.target == "aws" or os.environ.get("COSMICAI_EXECUTOR_MODE", "process") == "docker",
        base_image=args.base_image,
        runtime_image=runtime,
        wheel_source=args.wheel_source,
        make_target=lambda region: Target.from_settings(args.target, region, args.endpoint),
        plan=lambda target: _plan_json(args, target),
    )
    return preflight.main(ctx)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deploy.stack", description=__doc__)
    parser.add_argument("--target", choices=TARGETS, default="local")
    parser.add_argument(
        "--region",
        default="",
        help="region; empty: AWS_REGION, AWS_DEFAULT_REGION, the profile's "
        "region, and us-east-1 for the local cloud only (deploy.regions)",
    )
    parser.add_argument("--endpoint", default="", help="LocalStack URL for --target local")
    parser.add_argument(
        "--state-dir", default=".state", help="project state folder (terraform state goes to <it>/terraform/<target>)"
    )
    parser.add_argument("--plugin-mirror", default="", help="provider filesystem mirror, used when it exists")
    parser.add_argument("--var-file", default="", help="tfvars file (default terraform/examples/<target>.tfvars)")
    parser.add_argument("--terraform", default="terraform")
    parser.add_argument("--make", default="make")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("deploy", help=cmd_deploy.__doc__).set_defaults(run=cmd_deploy)
    p = sub.add_parser("plan", help=cmd_plan.__doc__)
    p.add_argument("--detailed-exitcode", action="store_true")
    p.set_defaults(run=cmd_plan)
    sub.add_parser("destroy", help=cmd_destroy.__doc__).set_defaults(run=cmd_destroy)
    p = sub.add_parser("preflight", help=cmd_preflight.__doc__)
    p.add_argument("--base-image", default="python:3.11-slim", help="BASE_IMAGE make images would use")
    p.add_argument(
        "--runtime-image", default="", help="RUNTIME_IMAGE (empty: derived from the base as make images does)"
    )
    p.add_argument("--wheel-source", choices=("wheelhouse", "index"), default="wheelhouse")
    p.set_defaults(run=cmd_preflight)
    p = sub.add_parser("output", help=cmd_output.__doc__)
    p.add_argument("name", nargs="?")
    p.set_defaults(run=cmd_output)
    p = sub.add_parser("exec", help=cmd_exec.__doc__)
    p.add_argument("command", nargs=argparse.REMAINDER)
    p.set_defaults(run=cmd_exec)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        run: Callable[[argparse.Namespace], int] = args.run
        return run(args)
    except DeployError as exc:
        print(f"{args.cmd}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
