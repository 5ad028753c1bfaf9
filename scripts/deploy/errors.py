"""Named errors of the deploy tooling."""


class DeployError(RuntimeError):
    """A deploy step cannot go on; the message says what and how to fix it."""


class CredentialsError(DeployError):
    """No usable AWS credentials were found for TARGET=aws."""


class LocalCloudUnreachableError(DeployError):
    """The LocalStack endpoint does not answer."""


class TerraformError(DeployError):
    """A terraform command failed."""
