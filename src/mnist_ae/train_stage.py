"""The train stage's run: in this process or as torchrun ranks, logging per epoch, saving the model.

Only rank 0 logs and writes; the other ranks train alongside it. The checkpoint goes
through an atomic rename, so a failed or killed run leaves the previous outputs or none.
"""

from __future__ import annotations

import sys
import time
from contextlib import nullcontext

import torch

from . import paths
from .checkpoint import save_checkpoint
from .dataset import load_split
from .device import check_precision, select_device
from .distributed import Rank, launched_by_torchrun, process_group, relaunch_with_torchrun
from .errors import UserError
from .evaluate import check_learned, per_sample_mse
from .live import live_log
from .model import AutoEncoder, ModelConfig
from .params import Params
from .train import TrainConfig, fit


def run(params: Params, script: str) -> None:
    """Train as ``params`` say; with ``train.nproc > 1``, by starting ``script`` again as torchrun ranks."""
    device = select_device(params.train.device)
    check_precision(device, params.train.precision)
    if params.train.nproc > 1 and not launched_by_torchrun():
        if device.type == "cuda" and params.train.nproc > torch.cuda.device_count():
            raise UserError(f"train.nproc is {params.train.nproc} but this machine has "
                            f"{torch.cuda.device_count()} CUDA devices; use at most one rank a GPU")
        sys.exit(relaunch_with_torchrun(params.train.nproc, script))
    # Same params, same data, same machine: same bits. On the CPU every op used is deterministic
    # already; elsewhere torch warns about any op that is not.
    torch.use_deterministic_algorithms(True, warn_only=True)
    # Read before joining the group: a rank that cannot start fails alone and at once, rather
    # than leaving the others waiting for it in the group.
    train, test = load_split(paths.PREPARED, "train"), load_split(paths.PREPARED, "test")
    with process_group(device) as rank:
        train_on_rank(params, rank, train.images, test.images)


def train_on_rank(params: Params, rank: Rank, train_images: torch.Tensor, test_images: torch.Tensor) -> None:
    torch.manual_seed(params.train.seed)
    config = ModelConfig(input_dim=train_images.shape[1], hidden=tuple(params.model.hidden),
                         code_dim=params.model.code_dim)
    model = AutoEncoder(config).to(rank.device)
    train_config = TrainConfig(**params.train.model_dump(exclude={"device", "nproc"}))

    with live_log(paths.TRAIN_LOG) if rank.is_main else nullcontext() as live:

        def log_epoch(epoch: int, loss: float) -> None:
            live.step = epoch
            live.log_metric("train_loss", round(loss, 6))
            live.log_metric("test_mse", round(float(per_sample_mse(model, test_images).mean()), 6))
            live.next_step()

        started = time.perf_counter()
        history = fit(model, train_images.to(rank.device), train_config, progress=rank.is_main,
                      on_epoch_end=log_epoch if rank.is_main else None, distributed=rank.distributed)
        if rank.is_main:
            epochs = train_config.epochs
            print(f"trained {epochs} epoch{'s' * (epochs != 1)} in {train_config.precision} on {rank.device} "
                  f"x {rank.world_size} in {time.perf_counter() - started:.1f} s; loss per epoch: "
                  + ", ".join(f"{x:.4f}" for x in history))
            metadata = {"dataset": params.data.dataset, "train": params.train.model_dump(),  # precision too
                        "loss_per_epoch": history, "torch": str(torch.__version__)}
            check_learned(model, train_images)  # a dead network is an error, not a model
            save_checkpoint(paths.CHECKPOINT, model, metadata)
