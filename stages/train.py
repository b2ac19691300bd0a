"""Stage 2: fit the auto-encoder on the training split and save the checkpoint and loss curve."""

import time

import torch

from mnist_ae import paths
from mnist_ae.checkpoint import save_checkpoint
from mnist_ae.dataset import load_split
from mnist_ae.device import select_device
from mnist_ae.errors import run_stage
from mnist_ae.evaluate import per_sample_mse
from mnist_ae.live import atomic_live
from mnist_ae.model import AutoEncoder, ModelConfig
from mnist_ae.params import load_params
from mnist_ae.train import TrainConfig, fit


def main() -> None:
    params = load_params()
    device = select_device(params.train.device)
    train, test = load_split(paths.PREPARED, "train"), load_split(paths.PREPARED, "test")
    torch.manual_seed(params.train.seed)
    config = ModelConfig(input_dim=train.images.shape[1], hidden=params.model.hidden, code_dim=params.model.code_dim)
    model = AutoEncoder(config).to(device)
    train_config = TrainConfig(**params.train.model_dump(exclude={"device"}))

    with atomic_live(paths.TRAIN_LOG) as live:

        def log_epoch(epoch: int, loss: float) -> None:
            live.step = epoch
            live.log_metric("train_loss", round(loss, 6))
            # 10,000 test images through the model: ~5% of an epoch's time, for an overfitting check.
            live.log_metric("test_mse", round(float(per_sample_mse(model, test.images).mean()), 6))
            live.next_step()

        started = time.perf_counter()
        history = fit(model, train.images.to(device), train_config, on_epoch_end=log_epoch)
        seconds = time.perf_counter() - started
        print(f"trained {train_config.epochs} epochs on {device} in {seconds:.1f} s; loss per epoch: "
              + ", ".join(f"{loss:.4f}" for loss in history))
        save_checkpoint(paths.CHECKPOINT, model, {"dataset": params.data.dataset, "train": params.train.model_dump(),
                                                  "loss_per_epoch": history, "torch": str(torch.__version__)})


if __name__ == "__main__":
    run_stage(main)
