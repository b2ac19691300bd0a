"""Stage 2: fit the auto-encoder on the training split; save the checkpoint and the per-epoch log."""

from mnist_ae import train_stage
from mnist_ae.errors import run_stage
from mnist_ae.params import load_params


def main() -> None:
    train_stage.run(load_params(), script=__file__)


if __name__ == "__main__":
    run_stage(main)
