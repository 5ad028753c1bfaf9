"""Fine-tune AstroMAE on shards: the reference recipe (optional frozen ViT encoder,
rotation/flip/noise augmentation, early stopping on validation), CPU or GPU.

Inputs and the target are standardised while training (it keeps Adam well conditioned
on nanomaggy pixels and ~18 mag magnitudes); the affine maps are folded exactly into the
first image convolutions, the first magnitude layer and the output layer before saving,
so the saved weights take raw shard inputs like any other AstroMAE weights.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cosmicai.metrics import compute_metrics
from cosmicai.model import AstroMAE, linears

# Everything of the ViT encoder; vit_block (its MLP head) stays trainable, as in the reference.
VIT_ENCODER_PREFIXES = ("patch_embed.", "cls_token", "pos_embed", "blocks.", "fc_norm.", "head.")


class TrainDataError(ValueError):
    """The training inputs are missing, empty or lack true redshifts."""


@dataclass
class TrainConfig:
    """Validated training settings (CLI -> config -> train)."""

    epochs: int = 30
    batch_size: int = 128
    lr: float = 5e-4
    weight_decay: float = 1e-4
    patience: int = 5
    freeze_vit: bool = False
    noise: float = 1.0  # extra Gaussian noise, in units of each band's sky sigma (0 = off)
    augment: bool = True
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    max_minutes: float | None = None
    max_train: int | None = None
    probe_epochs: int = 0  # stage 1: train the linear heads on cached branch features first
    probe_objects: int = 20000

    def __post_init__(self) -> None:
        checks = {
            "epochs": self.epochs >= 1,
            "batch_size": self.batch_size >= 2,
            "lr": self.lr > 0,
            "patience": self.patience >= 1,
            "noise": self.noise >= 0,
            "max_minutes": self.max_minutes is None or self.max_minutes > 0,
            "probe_epochs": self.probe_epochs >= 0,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"train: invalid setting(s) {bad}: {self}")


@dataclass
class Arrays:
    """In-memory split: images (N,5,32,32), magnitudes (N,5), redshift (N,), ids (N,)."""

    images: np.ndarray
    magnitudes: np.ndarray
    redshift: np.ndarray
    object_ids: np.ndarray

    @property
    def n(self) -> int:
        return int(self.redshift.shape[0])


@dataclass
class Standardiser:
    """Per-band image and magnitude shifts/scales and the target's, fitted on the train split."""

    img_mean: np.ndarray
    img_std: np.ndarray
    mag_mean: np.ndarray
    mag_std: np.ndarray
    z_mean: float
    z_std: float
    sky_sigma: np.ndarray  # robust per-band pixel noise, raw units

    @classmethod
    def fit(cls, data: Arrays) -> Standardiser:
        img = data.images[: min(data.n, 5000)]
        edge = np.concatenate(
            [img[:, :, :4, :].reshape(img.shape[0], 5, -1), img[:, :, -4:, :].reshape(img.shape[0], 5, -1)], axis=2
        )
        med = np.median(edge, axis=(0, 2), keepdims=True)
        sky = 1.4826 * np.median(np.abs(edge - med), axis=(0, 2))
        return cls(
            img_mean=img.mean(axis=(0, 2, 3)),
            img_std=img.std(axis=(0, 2, 3)) + 1e-8,
            mag_mean=data.magnitudes.mean(axis=0),
            mag_std=data.magnitudes.std(axis=0) + 1e-8,
            z_mean=float(data.redshift.mean()),
            z_std=float(data.redshift.std() + 1e-8),
            sky_sigma=sky.astype(np.float32),
        )

    def tensors(self, device: torch.device) -> dict[str, torch.Tensor]:
        def f(a: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(np.asarray(a, dtype=np.float32), device=device)

        return {
            "img_mean": f(self.img_mean).view(1, 5, 1, 1),
            "img_std": f(self.img_std).view(1, 5, 1, 1),
            "mag_mean": f(self.mag_mean).view(1, 5),
            "mag_std": f(self.mag_std).view(1, 5),
            "sky": f(self.sky_sigma / self.img_std).view(1, 5, 1, 1),
        }


@dataclass
class TrainResult:
    """What a run produced: the raw-input model, per-epoch history and metrics."""

    model: AstroMAE
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0
    val_metrics: dict[str, Any] = field(default_factory=dict)
    test_metrics: dict[str, Any] | None = None
    stopped: str = ""
    seconds: float = 0.0
    device: str = "cpu"
    trainable_parameters: int = 0


# ---------------------------------------------------------------- loading


def load_split(paths: Sequence[Path | str], limit: int | None = None) -> Arrays:
    """Read shard files (or folders of them) into one in-memory split; all must carry redshift."""
    from cosmicai.shards import read_shard

    files = expand_inputs(paths)
    if not files:
        raise TrainDataError(f"no shard files in {list(map(str, paths))}")
    parts = []
    total = 0
    for f in files:
        s = read_shard(f)
        if s.redshift is None:
            raise TrainDataError(f"{f}: shard has no redshift column; training needs true redshifts")
        parts.append(s)
        total += s.n
        if limit is not None and total >= limit:
            break
    arr = Arrays(
        np.concatenate([p.images for p in parts]),
        np.concatenate([p.magnitudes for p in parts]),
        np.concatenate([p.redshift for p in parts]),
        np.concatenate([p.object_ids for p in parts]),
    )
    if limit is not None and arr.n > limit:
        arr = Arrays(arr.images[:limit], arr.magnitudes[:limit], arr.redshift[:limit], arr.object_ids[:limit])
    return arr


def expand_inputs(paths: Sequence[Path | str]) -> list[Path]:
    """Files as given; folders expand to their *.safetensors, *.npz and *.pt files, sorted."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(q for q in p.iterdir() if q.suffix in (".safetensors", ".npz", ".pt") and q.is_file())
        elif p.is_file():
            out.append(p)
        else:
            raise TrainDataError(f"{p}: no such file or folder")
    return out


# ---------------------------------------------------------------- model pieces


def pick_device(name: str) -> torch.device:
    """'auto' -> CUDA if present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def set_trainable(model: AstroMAE, freeze_vit: bool) -> int:
    """Freeze the ViT encoder if asked; return the number of trainable parameters."""
    for name, p in model.named_parameters():
        p.requires_grad = not (freeze_vit and name.startswith(VIT_ENCODER_PREFIXES))
    model.pos_embed.requires_grad = False  # fixed sin-cos table
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def augment(images: torch.Tensor, sky: torch.Tensor, noise: float, gen: torch.Generator) -> torch.Tensor:
    """Random dihedral transform (4 rotations x flip) per object, plus Gaussian noise."""
    n = images.shape[0]
    choice = torch.randint(0, 8, (n,), generator=gen, device="cpu").to(images.device)
    out = images.clone()
    for k in range(8):
        sel = (choice == k).nonzero(as_tuple=True)[0]
        if sel.numel() == 0:
            continue
        x = torch.rot90(images[sel], k % 4, dims=(2, 3))
        out[sel] = torch.flip(x, dims=(3,)) if k >= 4 else x
    if noise > 0:
        eps = torch.randn(out.shape, generator=gen, device="cpu").to(out.device)
        out = out + eps * (sky * noise)
    return out


def forward(model: AstroMAE, images: torch.Tensor, mags: torch.Tensor, freeze_vit: bool) -> torch.Tensor:
    """Model output, skipping the frozen encoder's backward graph."""
    if freeze_vit:
        with torch.no_grad():
            enc = model.encode(images)
        vit = model.vit_block(enc)
    else:
        vit = model.vit_block(model.encode(images))
    cnn = model.inception_model(images)
    m = model.magnitude_block(mags)
    return model.concat_block(torch.cat((vit, cnn, m), dim=1)).squeeze(1)


def fold_standardisation(model: AstroMAE, st: Standardiser) -> AstroMAE:
    """Return a copy taking raw inputs: fold x -> (x - mean)/std and z = z_mean + z_std * out into the weights."""
    m = copy.deepcopy(model).cpu().float()
    scale = torch.as_tensor(1.0 / st.img_std, dtype=torch.float32)
    shift = torch.as_tensor(-st.img_mean / st.img_std, dtype=torch.float32)
    with torch.no_grad():
        # Both image entry points are unpadded convs, so the fold is exact.
        for conv in (m.patch_embed.proj, m.inception_model.conv2d_init):
            w, bias = conv.weight, conv.bias  # (out, 5, k, k), (out,)
            if bias is None:
                raise RuntimeError("standardisation fold needs entry convolutions with a bias")
            bias += (w * shift.view(1, 5, 1, 1)).sum(dim=(1, 2, 3))
            conv.weight.mul_(scale.view(1, 5, 1, 1))
        lin = linears(m.magnitude_block)[0]
        ms = torch.as_tensor(1.0 / st.mag_std, dtype=torch.float32)
        mm = torch.as_tensor(st.mag_mean, dtype=torch.float32)
        lin.bias.sub_(lin.weight @ (mm * ms))
        lin.weight.mul_(ms.view(1, 5))
        last = linears(m.concat_block)[-1]
        last.weight.mul_(st.z_std)
        last.bias.mul_(st.z_std).add_(st.z_mean)
    return m.eval()


def _check_convs_unpadded(model: AstroMAE) -> None:
    for conv in (model.patch_embed.proj, model.inception_model.conv2d_init):
        if any(p != 0 for p in conv.padding):
            raise RuntimeError("standardisation fold needs unpadded entry convolutions")


# ---------------------------------------------------------------- stage 1: linear heads on cached features


def calibrate_batchnorm(
    model: AstroMAE, data: Arrays, stt: dict[str, torch.Tensor], device: torch.device, n: int = 2048
) -> None:
    """Set BatchNorm running statistics from training images (cumulative average), then freeze them.

    With a randomly initialised CNN the init statistics (0, 1) would leave it unnormalised;
    frozen statistics make the cached stage-1 features equal to what stage 2 sees.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    model.inception_model.train()
    with torch.no_grad():
        for s in range(0, min(n, data.n), 256):
            x = (torch.from_numpy(data.images[s : s + 256]).to(device) - stt["img_mean"]) / stt["img_std"]
            model.inception_model(x)
    for bn in bns:
        bn.momentum = 0.1
    model.inception_model.eval()


def branch_features(
    model: AstroMAE, data: Arrays, stt: dict[str, torch.Tensor], device: torch.device, n: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(ViT encoder output, inception trunk output, standardised magnitudes) for the first n objects."""
    model.eval()
    n = data.n if n is None else min(n, data.n)
    enc, trunk = [], []
    with torch.inference_mode():
        for s in range(0, n, 256):
            e = min(n, s + 256)
            x = (torch.from_numpy(data.images[s:e]).to(device) - stt["img_mean"]) / stt["img_std"]
            enc.append(model.encode(x))
            trunk.append(model.inception_model.trunk(x))
    mags = (torch.from_numpy(data.magnitudes[:n]).to(device) - stt["mag_mean"]) / stt["mag_std"]
    return torch.cat(enc).clone(), torch.cat(trunk).clone(), mags.clone()


def heads_forward(model: AstroMAE, enc: torch.Tensor, trunk: torch.Tensor, mags: torch.Tensor) -> torch.Tensor:
    """The model's output from cached branch features (every Linear layer, no convolutions)."""
    vit = model.vit_block(enc)
    cnn = model.inception_model.head_layers(trunk)
    return model.concat_block(torch.cat((vit, cnn, model.magnitude_block(mags)), dim=1)).squeeze(1)


def probe_stage(
    model: AstroMAE,
    train_data: Arrays,
    val_data: Arrays,
    st: Standardiser,
    stt: dict[str, torch.Tensor],
    config: TrainConfig,
    device: torch.device,
    log: Callable[[dict[str, Any]], None] | None,
) -> list[dict[str, Any]]:
    """Stage 1: fit all Linear layers on cached (un-augmented) branch features; return history."""
    t0 = time.perf_counter()
    tr = branch_features(model, train_data, stt, device, config.probe_objects)
    va = branch_features(model, val_data, stt, device)
    heads = [
        model.vit_block,
        model.inception_model.head_layers,
        model.magnitude_block,
        model.concat_block,
    ]
    params = [p for h in heads for p in h.parameters()]
    opt = torch.optim.AdamW(params, lr=2 * config.lr, weight_decay=config.weight_decay)
    n = tr[0].shape[0]
    steps = config.probe_epochs * (n // config.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2 * config.lr, total_steps=max(1, steps))
    z_all = torch.from_numpy(train_data.redshift[:n]).to(device)
    gen = torch.Generator().manual_seed(config.seed + 1)
    history = []
    for epoch in range(1, config.probe_epochs + 1):
        for h in heads:
            h.train()
        order = torch.randperm(n, generator=gen).to(device)
        losses = []
        for b in range(n // config.batch_size):
            idx = order[b * config.batch_size : (b + 1) * config.batch_size]
            z = z_all[idx]
            pred = st.z_mean + st.z_std * heads_forward(model, tr[0][idx], tr[1][idx], tr[2][idx])
            loss = nn.functional.huber_loss((pred - z) / (1 + z), torch.zeros_like(z), delta=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
        model.eval()
        with torch.inference_mode():
            zp = st.z_mean + st.z_std * heads_forward(model, *va).cpu().numpy()
        vm = compute_metrics(val_data.redshift, zp)
        entry = {
            "epoch": f"probe {epoch}",
            "train_loss": float(np.mean(losses)),
            "seconds": round(time.perf_counter() - t0, 1),
            "train_objects_per_s": None,
            "lr": sched.get_last_lr()[0],
            **{f"val_{k}": v for k, v in vm.items()},
        }
        history.append(entry)
        if log:
            log(entry)
    return history


# ---------------------------------------------------------------- loop


def predict_std(
    model: AstroMAE, data: Arrays, stt: dict[str, torch.Tensor], device: torch.device, batch: int = 512
) -> np.ndarray:
    """Standardised-space predictions (eval mode, no augmentation)."""
    model.eval()
    outs = []
    with torch.inference_mode():
        for s in range(0, data.n, batch):
            x = (torch.from_numpy(data.images[s : s + batch]).to(device) - stt["img_mean"]) / stt["img_std"]
            mg = (torch.from_numpy(data.magnitudes[s : s + batch]).to(device) - stt["mag_mean"]) / stt["mag_std"]
            outs.append(forward(model, x, mg, freeze_vit=False).float().cpu().numpy())
    return np.concatenate(outs)


def train(
    train_data: Arrays,
    val_data: Arrays,
    config: TrainConfig,
    test_data: Arrays | None = None,
    init: AstroMAE | None = None,
    log: Callable[[dict[str, Any]], None] | None = None,
    on_best: Callable[[AstroMAE, dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Train with early stopping on validation NMAD+MAE; return the best model folded for raw inputs."""
    if train_data.n < config.batch_size:
        raise TrainDataError(f"train split has {train_data.n} objects, fewer than one batch ({config.batch_size})")
    if val_data.n == 0:
        raise TrainDataError("validation split is empty")
    t0 = time.perf_counter()
    device = pick_device(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)

    st = Standardiser.fit(train_data)
    stt = st.tensors(device)
    model = (copy.deepcopy(init) if init is not None else AstroMAE()).to(device)
    _check_convs_unpadded(model)
    freeze_bn = config.probe_epochs > 0
    if freeze_bn:
        calibrate_batchnorm(model, train_data, stt, device)
    trainable = set_trainable(model, config.freeze_vit)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = train_data.n // config.batch_size
    total_steps = steps_per_epoch * config.epochs
    warmup = max(1, min(300, total_steps // 20))
    budget_s = None if config.max_minutes is None else 60 * config.max_minutes

    def lr_factor(step: int) -> float:
        # Cosine decay over the planned steps, or over the time budget if that ends first.
        frac = step / max(1, total_steps)
        if budget_s is not None:
            frac = max(frac, (time.perf_counter() - t0) / budget_s)
        return min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    zt_all = torch.from_numpy(train_data.redshift)

    result = TrainResult(model=model, device=str(device), trainable_parameters=trainable)
    best_score, best_state, bad_epochs = math.inf, None, 0
    if config.probe_epochs:
        result.history += probe_stage(model, train_data, val_data, st, stt, config, device, log)
        # The stage-1 model is a candidate too (epoch 0): stage 2 keeps it unless it beats it.
        vm = result.history[-1]
        vm = {k[4:]: v for k, v in vm.items() if k.startswith("val_")}
        best_score, best_state, result.val_metrics = vm["precision"] + vm["mae"], _state_copy(model), vm
        if on_best:
            on_best(fold_standardisation(model, st), result.history[-1])
    deadline = None if config.max_minutes is None else t0 + 60 * config.max_minutes
    for epoch in range(1, config.epochs + 1):
        model.train()
        if config.freeze_vit:
            model.blocks.eval()
        if freeze_bn:
            for m in model.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.eval()
        order = rng.permutation(train_data.n)
        losses = []
        t_epoch = time.perf_counter()
        for b in range(steps_per_epoch):
            idx = np.sort(order[b * config.batch_size : (b + 1) * config.batch_size])
            x = (torch.from_numpy(train_data.images[idx]).to(device) - stt["img_mean"]) / stt["img_std"]
            if config.augment:
                x = augment(x, stt["sky"], config.noise, gen)
            mg = (torch.from_numpy(train_data.magnitudes[idx]).to(device) - stt["mag_mean"]) / stt["mag_std"]
            z = zt_all[idx].to(device)
            pred = st.z_mean + st.z_std * forward(model, x, mg, config.freeze_vit)
            # Huber on the scaled residual (z'-z)/(1+z): robust like the NMAD it is judged by.
            loss = nn.functional.huber_loss((pred - z) / (1 + z), torch.zeros_like(z), delta=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            if deadline is not None and time.perf_counter() > deadline:
                break
        rate = len(losses) * config.batch_size / max(1e-9, time.perf_counter() - t_epoch)
        zp = st.z_mean + st.z_std * predict_std(model, val_data, stt, device)
        vm = compute_metrics(val_data.redshift, zp)
        score = vm["precision"] + vm["mae"]
        entry = {
            "epoch": epoch,
            "train_loss": float(np.mean(losses)) if losses else None,
            "seconds": round(time.perf_counter() - t0, 1),
            "train_objects_per_s": round(rate, 1),
            "lr": sched.get_last_lr()[0],
            **{f"val_{k}": v for k, v in vm.items()},
        }
        result.history.append(entry)
        if log:
            log(entry)
        if score < best_score:
            best_score, bad_epochs, result.best_epoch = score, 0, epoch
            best_state = _state_copy(model)
            result.val_metrics = vm
            if on_best:
                on_best(fold_standardisation(model, st), entry)
        else:
            bad_epochs += 1
        if bad_epochs >= config.patience:
            result.stopped = f"early stop: no validation gain for {config.patience} epochs"
            break
        if deadline is not None and time.perf_counter() > deadline:
            result.stopped = f"time budget of {config.max_minutes} min reached"
            break
    else:
        result.stopped = f"completed {config.epochs} epochs"
    assert best_state is not None
    model.load_state_dict(best_state)
    result.model = fold_standardisation(model, st)
    if test_data is not None and test_data.n:
        result.test_metrics = evaluate(result.model, test_data)
    result.seconds = time.perf_counter() - t0
    return result


def _state_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    """Detached CPU copy of a model's state (the best-so-far snapshot)."""
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def evaluate(model: AstroMAE, data: Arrays, batch: int = 512) -> dict[str, Any]:
    """Metrics of a raw-input model on a split (CPU, eval mode)."""
    model = model.eval()
    preds = []
    with torch.inference_mode():
        for s in range(0, data.n, batch):
            x = torch.from_numpy(data.images[s : s + batch])
            m = torch.from_numpy(data.magnitudes[s : s + batch])
            preds.append(model(x, m).squeeze(1).numpy())
    return compute_metrics(data.redshift, np.concatenate(preds))


def colour_knn_baseline(train_data: Arrays, test_data: Arrays, k: int = 15) -> dict[str, Any]:
    """k-nearest-neighbour regression on the four colours alone (the signal check of the issue)."""
    from sklearn.neighbors import KNeighborsRegressor

    def colours(a: Arrays) -> np.ndarray:
        return -np.diff(a.magnitudes.astype(np.float64), axis=1)

    knn = KNeighborsRegressor(n_neighbors=k, weights="distance").fit(colours(train_data), train_data.redshift)
    return compute_metrics(test_data.redshift, knn.predict(colours(test_data)))


def mean_baseline(train_data: Arrays, test_data: Arrays) -> dict[str, Any]:
    """Metrics of predicting the training split's mean redshift for every test object (no signal)."""
    return compute_metrics(
        test_data.redshift, np.full(test_data.n, float(np.mean(train_data.redshift)), dtype=np.float32)
    )


def config_dict(config: TrainConfig) -> dict[str, Any]:
    """Plain dict of the settings (for the model card)."""
    return asdict(config)
