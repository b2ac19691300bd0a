"""Stage 2: fit the model family params.yaml names on the training split; save the checkpoint and
the per-epoch log. With ``train.nproc > 1`` the stage starts itself again as torchrun ranks, which
train together (DDP); rank 0 alone logs and writes."""

import sys
import time

import torch

from mnist_ae.core import paths
from mnist_ae.core.dataset import load_split
from mnist_ae.core.errors import run_stage
from mnist_ae.core.params import load_params
from mnist_ae.models import build_model
from mnist_ae.models.checkpoint import save_checkpoint
from mnist_ae.models.reconstruction import check_learned
from mnist_ae.training.device import check_precision, select_device
from mnist_ae.training.distributed import needs_torchrun, process_group, relaunch_with_torchrun
from mnist_ae.training.live import epoch_log
from mnist_ae.training.loop import fit
from mnist_ae.training.threads import configure_threads


def main() -> None:
    params = load_params()
    device = select_device(params.train.device)
    check_precision(device, params.train.precision)
    configure_threads()  # one per core this process may use; OMP_NUM_THREADS wins
    if needs_torchrun(params.train.nproc):
        sys.exit(relaunch_with_torchrun(params.train.nproc, __file__, device))
    # Same params, same data, same machine: same bits. On the CPU every op used is deterministic
    # already; elsewhere torch warns about any op that is not.
    torch.use_deterministic_algorithms(True, warn_only=True)
    # Read before joining the group: a rank that cannot start fails alone and at once, rather than
    # leaving the others waiting for it.
    train, test = load_split(paths.PREPARED, "train"), load_split(paths.PREPARED, "test")

    with process_group(device) as rank:
        model = build_model(params.model, seed=params.train.seed).to(rank.device)
        started = time.perf_counter()
        with epoch_log(paths.TRAIN_LOG, model, test.images, enabled=rank.is_main) as on_epoch_end:
            history = fit(model, train.images.to(rank.device), params.train, progress=rank.is_main,
                          on_epoch_end=on_epoch_end, distributed=rank.distributed)
        if rank.is_main:
            epochs = params.train.epochs
            print(f"trained {params.model.kind} for {epochs} epoch{'s' * (epochs != 1)} on {params.train.loss} in "
                  f"{params.train.precision} on {rank.device} x {rank.world_size} in "
                  f"{time.perf_counter() - started:.1f} s; loss per epoch: " + ", ".join(f"{x:.4f}" for x in history))
            check_learned(model, train.images)  # a dead network is an error, not a model
            metadata = {"dataset": params.data.dataset, "train": params.train.model_dump(),
                        "loss_per_epoch": history, "torch": str(torch.__version__)}
            save_checkpoint(paths.CHECKPOINT, model, metadata)


if __name__ == "__main__":
    run_stage(main)
