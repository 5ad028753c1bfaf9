"""Deploy targets: AWS refuses without credentials, local needs a live LocalStack."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from deploy import stack  # noqa: E402
from deploy.errors import CredentialsError, DeployError, LocalCloudUnreachableError  # noqa: E402
from deploy.targets import Target  # noqa: E402


@pytest.fixture
def no_aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An environment where the standard credential chain finds nothing (and no IMDS)."""
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_aws_target_refuses_without_credentials(no_aws_credentials: None) -> None:
    with pytest.raises(CredentialsError, match="TARGET=aws needs AWS credentials.*AWS_REGION"):
        Target.from_settings("aws", "us-east-1", "").check_reachable()


def test_make_deploy_aws_stops_before_terraform_without_credentials(
    no_aws_credentials: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A terraform that does not exist proves the refusal comes first.
    rc = stack.main(
        [
            "--target",
            "aws",
            "--region",
            "eu-west-1",
            "--state-dir",
            str(tmp_path),
            "--terraform",
            "/nonexistent/terraform",
            "deploy",
        ]
    )
    assert rc == 2
    err = capsys.readouterr().err
    assert "CredentialsError" in err and "sts get-caller-identity" in err
    assert not (tmp_path / "terraform").exists()


def test_make_deploy_aws_stops_before_terraform_without_a_region(
    no_aws_credentials: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = stack.main(
        ["--target", "aws", "--state-dir", str(tmp_path), "--terraform", "/nonexistent/terraform", "deploy"]
    )
    assert rc == 2
    err = capsys.readouterr().err
    assert "RegionError" in err and "export AWS_REGION=" in err
    assert not (tmp_path / "terraform").exists()


def test_deploy_refuses_a_region_other_than_the_deployed_stacks(
    no_aws_credentials: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "terraform" / "aws" / "terraform.tfstate"
    state.parent.mkdir(parents=True)
    state.write_text(json.dumps({"version": 4, "outputs": {"region": {"value": "us-east-1", "type": "string"}}}))
    rc = stack.main(
        [
            "--target",
            "aws",
            "--region",
            "eu-west-1",
            "--state-dir",
            str(tmp_path),
            "--terraform",
            "/nonexistent/terraform",
            "deploy",
        ]
    )
    assert rc == 2
    err = capsys.readouterr().err
    assert "deployed in us-east-1" in err and "AWS_REGION=us-east-1" in err and "STATE_DIR" in err


def test_commands_on_a_deployed_stack_use_its_region(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "terraform" / "local" / "terraform.tfstate"
    state.parent.mkdir(parents=True)
    state.write_text(json.dumps({"version": 4, "outputs": {"region": {"value": "eu-central-1", "type": "string"}}}))
    monkeypatch.setenv("AWS_REGION", "us-west-2")
    args = stack.build_parser().parse_args(
        ["--target", "local", "--endpoint", "http://127.0.0.1:1", "--state-dir", str(tmp_path), "output"]
    )
    assert stack._target(args).region == "eu-central-1"


def test_local_target_names_the_missing_localstack() -> None:
    target = Target.from_settings("local", "us-east-1", f"http://127.0.0.1:{_closed_port()}")
    with pytest.raises(LocalCloudUnreachableError, match="make localstack-up"):
        target.check_reachable()


def test_unknown_target_and_missing_endpoint_are_named() -> None:
    with pytest.raises(DeployError, match="'gcp' is not one of local, aws"):
        Target.from_settings("gcp", "us-east-1", "")
    with pytest.raises(DeployError, match="LocalStack endpoint"):
        Target.from_settings("local", "us-east-1", "")


def test_local_client_environment_uses_endpoint_and_keeps_real_keys_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAREALKEY")
    monkeypatch.setenv("AWS_PROFILE", "work")
    env = Target.from_settings("local", "eu-west-1", "http://127.0.0.1:4999").client_environment()
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:4999"
    assert env["AWS_ACCESS_KEY_ID"] == "test" and "AWS_PROFILE" not in env
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "eu-west-1"


def test_aws_client_environment_drops_a_local_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    monkeypatch.setenv("AWS_PROFILE", "work")
    env = Target.from_settings("aws", "us-west-2", "http://ignored:1").client_environment()
    assert "AWS_ENDPOINT_URL" not in env and env["AWS_PROFILE"] == "work"
    assert env["AWS_REGION"] == "us-west-2"


def test_output_without_a_deployment_says_what_to_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = stack.main(["--target", "local", "--endpoint", "http://127.0.0.1:1", "--state-dir", str(tmp_path), "output"])
    assert rc == 2
    assert "make deploy TARGET=local" in capsys.readouterr().err


def test_destroy_without_state_is_a_no_op(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = stack.main(["--target", "local", "--endpoint", "http://127.0.0.1:1", "--state-dir", str(tmp_path), "destroy"])
    assert rc == 0
    assert "nothing deployed for target local" in capsys.readouterr().out
