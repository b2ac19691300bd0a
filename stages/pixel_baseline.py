"""Stage: k-means on the raw pixels of every image and, with embed.manifold, the manifold clustering,
scored as the embed stage scores the codes. It follows the data, the clustering params and the
replicate seed (``train.seed``), never the model: DVC runs it once per dataset and seed, and every
experiment of that seed compares with it."""

import torch

from mnist_ae.core import paths
from mnist_ae.core.atomic import write_json
from mnist_ae.core.dataset import SPLITS, load_split
from mnist_ae.core.errors import run_stage
from mnist_ae.embedding.downstream import clustering_metrics
from mnist_ae.params import load_params


def main() -> None:
    params = load_params()
    splits = [load_split(paths.PREPARED, name) for name in SPLITS]
    images = torch.cat([split.images for split in splits]).numpy()
    labels = torch.cat([split.labels for split in splits]).numpy()
    scores = clustering_metrics(images, labels, params.replicate_embed())
    print(f"the pixels of {len(labels):,} images: " + ", ".join(f"{k} {v}" for k, v in scores.items()))
    write_json(paths.PIXEL_BASELINE, {paths.PIXEL_PREFIX + name: value for name, value in scores.items()})


if __name__ == "__main__":
    run_stage(main)
