"""`cosmicai calibrate-uncertainty`: fit tta8's z_err scale for some weights and record it in their model card."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the calibrate-uncertainty parser."""
    from cosmicai.contracts import BACKENDS, PRECISIONS

    p = subparsers.add_parser(
        "calibrate-uncertainty",
        help="calibrate uncertainty tta8 (z_err) for weights and record it in their model card",
        description=(
            "Predict every object of the --calibration shards over the 8 rotations/flips of its cutout and fit "
            "the scale that makes |z_true - z_pred| <= scale x spread hold for 68.27%% of them; then measure, on "
            "the --heldout shards (never used for the fit), the coverage of z_err and of [z_p16, z_p84], and the "
            "compute cost of tta8 against none (same engine and batch, --threads). Writes it all as "
            "uncertainty.tta8 into the weights' MODEL_CARD.json (the card beside them, else the packaged one, "
            "whichever records their sha256; or --card) and re-renders MODEL_CARD.md. Both splits need redshifts."
        ),
    )
    p.add_argument(
        "--weights", metavar="W", default=None, help="weights (default: $COSMICAI_WEIGHTS or the packaged demo weights)"
    )
    p.add_argument(
        "--calibration", nargs="+", required=True, metavar="SHARD", help="labelled shards the scale is fitted on"
    )
    p.add_argument(
        "--heldout", nargs="+", required=True, metavar="SHARD", help="labelled shards the coverage is measured on"
    )
    p.add_argument(
        "--card", metavar="JSON", default=None, help="MODEL_CARD.json to update (must record the weights' sha256)"
    )
    p.add_argument("--backend", choices=BACKENDS, default="torch", help="engine backend (default torch)")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32", help="engine precision (default fp32)")
    p.add_argument("--batch-size", type=int, default=512, metavar="N", help="images per engine call (default 512)")
    p.add_argument(
        "--threads", type=int, default=1, metavar="N", help="engine threads (default 1: the cost factor's basis)"
    )
    p.add_argument(
        "--cost-objects",
        type=int,
        default=512,
        metavar="N",
        help="held-out objects the cost factor is timed on (default 512)",
    )
    p.add_argument(
        "--rounds", type=int, default=3, metavar="N", help="alternating timing rounds, best kept (default 3)"
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Calibrate, record, print the card's new section as JSON; 2 on bad input."""
    from cosmicai.calibration import LabelledSplit, calibrate_tta8, record_in_card
    from cosmicai.data.modelcard import find_model_card
    from cosmicai.engine import Engine, EngineError
    from cosmicai.perf.uncertainty_cost import measure_cost_factor
    from cosmicai.shards import ShardError
    from cosmicai.uncertainty import UncertaintyError
    from cosmicai.weightsfile import WeightsError, resolve_weights_path, weights_sha256

    try:
        weights = resolve_weights_path(args.weights)
        if args.card:
            card = Path(args.card)
            if json.loads(card.read_text()).get("sha256") != weights_sha256(weights):
                raise UncertaintyError(f"{card} does not record the sha256 of {weights}")
        else:
            found = find_model_card(weights)
            if found is None:
                raise UncertaintyError(
                    f"no MODEL_CARD.json beside {weights} or packaged records its sha256; pass --card"
                )
            card = found[0]
        calibration = LabelledSplit.read(args.calibration)
        heldout = LabelledSplit.read(args.heldout)
        engine = Engine.from_weights(
            weights, backend=args.backend, precision=args.precision, threads=args.threads, batch_size=args.batch_size
        )
    except (OSError, ValueError, WeightsError, EngineError, ShardError, UncertaintyError) as exc:
        print(f"calibrate-uncertainty: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    n = min(args.cost_objects, heldout.z_true.size)
    cost = measure_cost_factor(engine, heldout.images[:n], heldout.magnitudes[:n], args.rounds)
    section = calibrate_tta8(engine, calibration, heldout, cost=cost, command=_command(args))
    md = record_in_card(card, section)
    print(json.dumps({"card": str(card), "markdown": str(md), "tta8": section.model_dump()}))
    return 0


def _command(args: argparse.Namespace) -> str:
    """The command line that reproduces this calibration (recorded in the card)."""
    parts = [
        "cosmicai",
        "calibrate-uncertainty",
        *(["--weights", args.weights] if args.weights else []),
        "--calibration",
        *args.calibration,
        "--heldout",
        *args.heldout,
        "--backend",
        args.backend,
        "--precision",
        args.precision,
        "--batch-size",
        str(args.batch_size),
        "--threads",
        str(args.threads),
        "--cost-objects",
        str(args.cost_objects),
        "--rounds",
        str(args.rounds),
    ]
    return shlex.join(parts)
