"""Stage 1: get the dataset's four files (checksums verified on every run) and store float tensors."""

from mnist_ae.core import paths
from mnist_ae.core.dataset import class_names
from mnist_ae.core.errors import run_stage
from mnist_ae.data.download import ensure_raw_files
from mnist_ae.data.prepare import prepare_splits
from mnist_ae.data.sources import get_source
from mnist_ae.params import load_params


def main() -> None:
    params = load_params()
    source = get_source(params.data.dataset, params.data.md5)
    paths.RAW.mkdir(parents=True, exist_ok=True)  # an output even when empty (a custom dataset is read in place)
    raw_paths = ensure_raw_files(source, paths.RAW)
    data = params.data
    splits = prepare_splits(raw_paths, paths.PREPARED, class_names(data.dataset, data.classes), data.validation,
                            data.seed)
    for name, split in splits.items():
        print(f"{name}: {len(split)} images of {split.images.shape[1]} pixels -> {paths.PREPARED / name}.pt")


if __name__ == "__main__":
    run_stage(main)
