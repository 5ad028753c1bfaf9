"""What goes into each image: Dockerfile, top-level requirements, exclusions, size budget."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from docker_engine import REPO_ROOT

IMAGES_DIR = REPO_ROOT / "images"
# cosmicai's core dependencies minus rich (only the CLI draws progress bars; the
# handlers never import it). Summarize reads catalogs, so pyarrow is in both images.
_ORCHESTRATION_ROOTS = ("numpy", "safetensors", "pydantic", "boto3", "pyarrow", "awslambdaric")


@dataclass(frozen=True)
class ImageSpec:
    """One image: its Dockerfile, the packages resolved from the lock, and its budget."""

    name: str
    dockerfile: Path
    roots: tuple[str, ...]
    budget_mb: float
    bake_weights: bool
    # Dependencies left out on purpose (see the Dockerfile header and README).
    exclude: frozenset[str] = field(default_factory=frozenset)

    @property
    def repository(self) -> str:
        """Local repository name, also the default ECR repository name."""
        return f"cosmicai-{self.name}"


IMAGES: dict[str, ImageSpec] = {
    "inference": ImageSpec(
        name="inference",
        dockerfile=IMAGES_DIR / "inference.Dockerfile",
        roots=(*_ORCHESTRATION_ROOTS, "torch"),
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
