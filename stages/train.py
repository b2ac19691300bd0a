"""Stage 2: fit the auto-encoder on the training split and save the checkpoint and loss curve."""

import time

import torch

from mnist_ae import paths
from mnist_ae.atomic import atomic_path, write_json
from mnist_ae.checkpoint import save_checkpoint
from mnist_ae.dataset import load_split
from mnist_ae.device import select_device
from mnist_ae.errors import run_stage
from mnist_ae.model import AutoEncoder, ModelConfig
from mnist_ae.params import load_params
from mnist_ae.train import TrainConfig, fit


def main() -> None:
    params = load_params()
    device = select_device(params.train.device)
    train = load_split(paths.PREPARED, "train")
    torch.manual_seed(params.train.seed)
    config = ModelConfig(input_dim=train.images.shape[1], hidden=params.model.hidden, code_dim=params.model.code_dim)
    model = AutoEncoder(config).to(device)
    train_config = TrainConfig(**params.train.model_dump(exclude={"device"}))

    started = time.perf_counter()
    history = fit(model, train.images.to(device), train_config)
    seconds = time.perf_counter() - started
    print(f"trained {train_config.epochs} epochs on {device} in {seconds:.1f} s; loss per epoch: "
          + ", ".join(f"{loss:.4f}" for loss in history))

    save_checkpoint(paths.CHECKPOINT, model, {"dataset": params.data.dataset, "train": params.train.model_dump(),
                                              "loss_per_epoch": history, "torch": str(torch.__version__)})
    # Written here once, atomically, rather than through dvclive, which appends as it goes: a killed
    # run would leave a partial curve where DVC reads it.
    with atomic_path(paths.TRAIN_LOSS) as tmp:
        tmp.write_text("epoch,loss\n" + "".join(f"{e},{loss:.6f}\n" for e, loss in enumerate(history, 1)))
    write_json(paths.TRAIN_METRICS, {"final_loss": round(history[-1], 6), "epochs": len(history)})


if __name__ == "__main__":
    run_stage(main)
