"""Stage 2: fit the auto-encoder on the training split and save the checkpoint and loss curve."""

import sys
import time
from contextlib import nullcontext

import torch

from mnist_ae import paths
from mnist_ae.checkpoint import save_checkpoint
from mnist_ae.dataset import load_split
from mnist_ae.device import select_device
from mnist_ae.distributed import Rank, launched_by_torchrun, process_group, relaunch_with_torchrun
from mnist_ae.errors import run_stage
from mnist_ae.evaluate import per_sample_mse
from mnist_ae.live import atomic_live
from mnist_ae.model import AutoEncoder, ModelConfig
from mnist_ae.params import Params, load_params
from mnist_ae.train import TrainConfig, fit


def main() -> None:
    params = load_params()
    if params.train.nproc > 1 and not launched_by_torchrun():
        sys.exit(relaunch_with_torchrun(params.train.nproc, __file__))
    with process_group(select_device(params.train.device)) as rank:
        train_on_rank(params, rank)


def train_on_rank(params: Params, rank: Rank) -> None:
    device = rank.device
    train, test = load_split(paths.PREPARED, "train"), load_split(paths.PREPARED, "test")
    torch.manual_seed(params.train.seed)
    config = ModelConfig(input_dim=train.images.shape[1], hidden=params.model.hidden, code_dim=params.model.code_dim)
    model = AutoEncoder(config).to(device)
    train_config = TrainConfig(**params.train.model_dump(exclude={"device", "nproc"}))

    # Only rank 0 logs and writes; the other ranks train alongside it.
    with atomic_live(paths.TRAIN_LOG) if rank.is_main else nullcontext() as live:

        def log_epoch(epoch: int, loss: float) -> None:
            live.step = epoch
            live.log_metric("train_loss", round(loss, 6))
            # 10,000 test images through the model: ~5% of an epoch's time, for an overfitting check.
            live.log_metric("test_mse", round(float(per_sample_mse(model, test.images).mean()), 6))
            live.next_step()

        started = time.perf_counter()
        history = fit(model, train.images.to(device), train_config, progress=rank.is_main,
                      on_epoch_end=log_epoch if rank.is_main else None, distributed=rank.distributed)
        seconds = time.perf_counter() - started
        if rank.is_main:
            print(f"trained {train_config.epochs} epochs on {device} x {rank.world_size} in {seconds:.1f} s; "
                  "loss per epoch: " + ", ".join(f"{loss:.4f}" for loss in history))
            save_checkpoint(paths.CHECKPOINT, model, {"dataset": params.data.dataset, "train": params.train.model_dump(),
                                                      "loss_per_epoch": history, "torch": str(torch.__version__)})

if __name__ == "__main__":
    run_stage(main)
