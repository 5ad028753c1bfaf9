"""`cosmicai train`: fine-tune AstroMAE on shards; write safetensors weights and a model card."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the train parser."""
    p = subparsers.add_parser(
        "train",
        help="fine-tune AstroMAE on shards (reference recipe) and write weights + model card",
        description=(
            "Train on shard files/folders with true redshifts: optional frozen ViT encoder, "
            "rotation/flip/noise augmentation, early stopping on validation. CPU by default, "
            "CUDA if present (--device). Writes safetensors weights and MODEL_CARD.md/.json."
        ),
    )
    p.add_argument("--train", nargs="+", required=True, metavar="PATH", help="training shards or folders")
    p.add_argument("--val", nargs="+", required=True, metavar="PATH", help="validation shards or folders")
    p.add_argument(
        "--test", nargs="+", default=None, metavar="PATH", help="test shards or folders (metrics in the card)"
    )
    p.add_argument("--out", required=True, metavar="FILE", help="weights file to write (.safetensors)")
    p.add_argument("--card", default=None, metavar="FILE", help="model card path (default: MODEL_CARD.md beside --out)")
    p.add_argument(
        "--init", default=None, metavar="W", help="start from these weights (fine-tune) instead of random init"
    )
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--patience", type=int, default=5, help="epochs without validation gain before stopping")
    p.add_argument("--freeze-vit", action="store_true", help="freeze the ViT encoder (reference fine-tuning)")
    p.add_argument("--no-augment", action="store_true", help="disable rotations/flips/noise")
    p.add_argument("--noise", type=float, default=1.0, help="augmentation noise in units of sky sigma")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto (CUDA if present, else CPU), cpu, cuda, cuda:1 ...")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--max-minutes", type=float, default=None, help="stop after this wall time (keeps the best epoch)")
    p.add_argument("--max-train", type=int, default=None, help="use at most this many training objects")
    p.add_argument(
        "--probe-epochs",
        type=int,
        default=0,
        metavar="K",
        help=(
            "stage 1: first fit the Linear heads for K epochs on cached branch features (fast; BatchNorm statistics "
            "calibrated and frozen)"
        ),
    )
    p.add_argument(
        "--probe-objects",
        type=int,
        default=20000,
        metavar="N",
        help="training objects whose features stage 1 caches (default 20000)",
    )
    p.add_argument("--fp16", action="store_true", help="store weights as fp16 (half the size; loaded as fp32)")
    p.add_argument("--note", action="append", default=[], help="limitation or remark for the model card")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Train, save the best weights (updated at each validation gain), write the card; 2 on bad input."""
    import torch
    from rich.console import Console

    from cosmicai.data.modelcard import sha256_file, write_model_card
    from cosmicai.data.train import (
        TrainConfig,
        TrainDataError,
        colour_knn_baseline,
        config_dict,
        load_split,
        mean_baseline,
        train,
    )
    from cosmicai.shards import ShardError
    from cosmicai.weights import WeightsError, load_model, save_weights

    console = Console(stderr=True)
    try:
        config = TrainConfig(
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            patience=args.patience,
            freeze_vit=args.freeze_vit,
            noise=args.noise,
            augment=not args.no_augment,
            seed=args.seed,
            device=args.device,
            threads=args.threads,
            max_minutes=args.max_minutes,
            max_train=args.max_train,
            probe_epochs=args.probe_epochs,
            probe_objects=args.probe_objects,
        )
        tr = load_split(args.train, limit=args.max_train)
        va = load_split(args.val)
        te = load_split(args.test) if args.test else None
        init = load_model(args.init) if args.init else None
    except (ValueError, ShardError, WeightsError) as exc:
        print(f"train: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    card = Path(args.card) if args.card else out.with_name("MODEL_CARD.md")
    dtype = torch.float16 if args.fp16 else None
    console.print(f"train: {tr.n} train / {va.n} val / {te.n if te else 0} test objects; {config}")

    def save(model: torch.nn.Module, entry: dict[str, Any]) -> None:
        save_weights(model, out, dtype=dtype, metadata={"epoch": str(entry["epoch"]), "seed": str(args.seed)})
        console.print(f"  saved best so far (epoch {entry['epoch']}) to {out}")

    def log(entry: dict[str, Any]) -> None:
        console.print(
            f"epoch {entry['epoch']}: loss {entry['train_loss']:.5f} val MAE {entry['val_mae']:.4f} "  # noqa: ISC001
            f"NMAD {entry['val_precision']:.4f} R2 {entry['val_r2']:.3f} ({entry['train_objects_per_s']} obj/s, "
            f"{entry['seconds']} s)"
        )

    try:
        result = train(tr, va, config, test_data=te, init=init, log=log, on_best=save)
    except TrainDataError as exc:
        print(f"train: {exc}", file=sys.stderr)
        return 2
    save_weights(result.model, out, dtype=dtype, metadata={"epoch": str(result.best_epoch), "seed": str(args.seed)})
    test_eval = result.test_metrics
    if dtype is not None and te is not None:
        from cosmicai.data.train import evaluate

        test_eval = evaluate(load_model(out), te)  # metrics of the weights as stored
    baseline = colour_knn_baseline(tr, te) if te is not None else None
    mean_only = mean_baseline(tr, te) if te is not None else None
    info = {
        "weights_name": out.name,
        "weights_bytes": out.stat().st_size,
        "stored_dtype": "fp16" if args.fp16 else "fp32",
        "sha256": sha256_file(out),
        "command": "cosmicai train " + " ".join(shlex.quote(a) for a in sys.argv[2:])
        if len(sys.argv) > 2
        else "cosmicai train",
        "data": _describe_data(args),
        "device": result.device,
        "seconds": result.seconds,
        "trainable_parameters": result.trainable_parameters,
        "config": config_dict(config),
        "best_epoch": result.best_epoch,
        "stopped": result.stopped,
        "history": result.history,
        "val_metrics": result.val_metrics,
        "test_metrics": test_eval,
        "baseline": baseline,
        "mean_baseline": mean_only,
        "notes": args.note,
    }
    write_model_card(card, info)
    print(
        json.dumps(
            {
                "weights": str(out),
                "card": str(card),
                "val": result.val_metrics,
                "test": test_eval,
                "colour_knn": baseline,
                "mean": mean_only,
            },
            default=str,
        )
    )
    return 0


def _describe_data(args: argparse.Namespace) -> dict[str, str]:
    """Per split: the inputs and, when a make-dataset catalog sits beside them, its recorded seed/count."""
    from cosmicai.data.train import expand_inputs

    out = {}
    for split in ("train", "val", "test"):
        paths = getattr(args, split)
        if not paths:
            continue
        files = expand_inputs(paths)
        info = Path(files[0]).parent / "dataset.json" if files else None
        extra = f"; {info.read_text().strip()}" if info and info.is_file() else ""
        out[split] = f"{', '.join(map(str, paths))} ({len(files)} shard files){extra}"
    return out
