"""What goes into each image: Dockerfile, top-level requirements, exclusions, size budget,
and the docker platform of each Lambda architecture."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from docker_engine import REPO_ROOT

IMAGES_DIR = REPO_ROOT / "images"
# cosmicai's core dependencies minus rich (only the CLI draws progress bars; the
# handlers never import it). Summarize reads catalogs, so pyarrow is in both images.
_ORCHESTRATION_ROOTS = ("numpy", "safetensors", "pydantic", "boto3", "pyarrow", "awslambdaric")

# Docker platform of each Lambda architecture (Terraform's `architecture` values).
PLATFORMS = {"x86_64": "linux/amd64", "arm64": "linux/arm64"}
# The project's own offline base (scripts/images/base.sh) and the size of its final-stage
# copy (`<base>-runtime`, measured 2026-11-26: 79.6 MB). The budgets below were set on it;
# on any other base the same budget applies to what the project adds over that base.
OWN_BASE_PREFIX = "cosmicai-base:"
OWN_RUNTIME_BASE_MB = 80.0


@dataclass(frozen=True)
class ImageSpec:
    """One image: its Dockerfile, the packages resolved from the lock, and its budget."""

    name: str
    dockerfile: Path
    roots: tuple[str, ...]
    # Total size on the project's own runtime base (what the README measures against).
    budget_mb: float
    bake_weights: bool
    # Dependencies left out on purpose (see the Dockerfile header and README).
    exclude: frozenset[str] = field(default_factory=frozenset)

    @property
    def repository(self) -> str:
        """Local repository name, also the default ECR repository name."""
        return f"cosmicai-{self.name}"

    @property
    def added_budget_mb(self) -> float:
        """Budget of the layers the project adds over the final stage's base."""
        return self.budget_mb - OWN_RUNTIME_BASE_MB

    def budget_for(self, runtime_image: str, runtime_base_mb: float) -> float:
        """The total size budget on `runtime_image` (of size `runtime_base_mb`).

        On our own base it is `budget_mb` as set; on another (python:3.11-slim is about
        45 MB larger) it grows by what that base weighs, so only the project's own
        layers are held to the budget.
        """
        if runtime_image.startswith(OWN_BASE_PREFIX):
            return self.budget_mb
        return round(runtime_base_mb + self.added_budget_mb, 1)


IMAGES: dict[str, ImageSpec] = {
    "inference": ImageSpec(
        name="inference",
        dockerfile=IMAGES_DIR / "inference.Dockerfile",
        # openvino: the engine's second backend (its worker never imports torch); pruned in prune.sh.
        roots=(*_ORCHESTRATION_ROOTS, "torch", "openvino"),
        budget_mb=1000.0,
        bake_weights=True,
        # `import torch` loads none of these: they serve torch.compile / symbolic shapes
        # (sympy, networkx) and building extensions (setuptools), not eager inference.
        exclude=frozenset({"sympy", "mpmath", "networkx", "setuptools"}),
    ),
    "orchestration": ImageSpec(
        name="orchestration",
        dockerfile=IMAGES_DIR / "orchestration.Dockerfile",
        roots=_ORCHESTRATION_ROOTS,
        budget_mb=250.0,
        bake_weights=False,
    ),
}
