"""Stage 2: fit the model family params.yaml names on the training split; save the checkpoint and
the per-epoch log (training loss, validation metrics). With ``train.nproc > 1`` the stage starts
itself again as torchrun ranks, which train together (DDP); rank 0 alone logs and writes."""

import sys
import time

import torch

from mnist_ae.core import paths
from mnist_ae.core.dataset import load_split
from mnist_ae.core.errors import run_stage
from mnist_ae.models.checkpoint import save_checkpoint
from mnist_ae.models.families import build_model
from mnist_ae.models.losses import LOSSES
from mnist_ae.models.reconstruction import check_learned, mean_image_mse
from mnist_ae.params import load_params
from mnist_ae.training.cpu import configure_process
from mnist_ae.training.device import check_precision, make_deterministic, select_device
from mnist_ae.training.distributed import needs_torchrun, process_group, relaunch_with_torchrun, world_size
from mnist_ae.training.live import epoch_log
from mnist_ae.training.loop import fit
from mnist_ae.training.steps import choose_step


def main() -> None:
    params = load_params()
    configure_process()  # before any product: reproducible kernels, one thread per usable core
    device = select_device(params.train.device)
    check_precision(device, params.train.precision)
    # What would fail alike in every rank fails here, before torchrun starts any: its one line printed
    # once, not once a rank. In a rank, before joining the group: one that cannot start fails alone
    # and at once, rather than leaving the others waiting for it.
    model = build_model(params.model, seed=params.train.seed)
    implementation = choose_step(model, params.train, device, distributed=world_size(params.train.nproc) > 1)
    train, validation = load_split(paths.PREPARED, "train"), load_split(paths.PREPARED, "validation")
    if needs_torchrun(params.train.nproc):
        del model, train, validation  # each rank reads its own
        sys.exit(relaunch_with_torchrun(params.train.nproc, __file__, device))
    make_deterministic(device)

    with process_group(device) as rank:
        model = model.to(rank.device)
        started = time.perf_counter()
        # The validation split moves to the device once, not at every epoch's validation pass.
        with epoch_log(paths.TRAIN_LOG, model, validation.images.to(rank.device), LOSSES[params.train.loss],
                       enabled=rank.is_main) as epoch_metrics:
            history = fit(model, train.images.to(rank.device), params.train, progress=rank.is_main,
                          on_epoch_end=epoch_metrics, distributed=rank.distributed,
                          implementation=implementation)
        if rank.is_main:
            epochs = params.train.epochs
            print(f"trained {params.model.kind} for {epochs} epoch{'s' * (epochs != 1)} on {params.train.loss} in "
                  f"{params.train.precision} on {rank.device} x {rank.world_size} (step: {implementation.name}) in "
                  f"{time.perf_counter() - started:.1f} s; loss per epoch: " + ", ".join(f"{x:.4f}" for x in history))
            # A dead network is an error, not a model: the last epoch's validation MSE against the mean image's.
            check_learned(epoch_metrics.last["val_mse"], mean_image_mse(train.images, validation.images))
            metadata = {"dataset": params.data.dataset, "train": params.train.model_dump(),
                        "loss_per_epoch": history, "torch": str(torch.__version__)}
            save_checkpoint(paths.CHECKPOINT, model, metadata)


if __name__ == "__main__":
    run_stage(main)
