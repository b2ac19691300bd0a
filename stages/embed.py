"""Stage 4: what the codes are good for. t-SNE of the codes of a seeded training subset, plotted by
class and scored by k-NN; a linear probe from the training codes to the test labels; k-means on the
codes of every image and, with embed.manifold, a mixture in their UMAP embedding, each beside the
pixels' (the pixel_baseline stage). Reads the codes the evaluate stage wrote: no model to run."""

import pandas as pd

from mnist_ae.core import paths
from mnist_ae.core.atomic import save_figure, write_json, write_table
from mnist_ae.core.codes import load_codes
from mnist_ae.core.errors import run_stage
from mnist_ae.embedding.downstream import clustering_metrics, probe_accuracy
from mnist_ae.embedding.figures import tsne_figure
from mnist_ae.embedding.tsne import embed_subset, embedding_metrics, knn_predictions
from mnist_ae.params import load_params


def main() -> None:
    params = load_params()
    codes, embed = load_codes(paths.CODES), params.replicate_embed()
    train, names = codes.splits["train"], codes.classes
    embedding = embed_subset(train, embed.size, embed.seed, embed.perplexity, embed.method)
    predicted = knn_predictions(embedding.codes, embedding.labels, embed.neighbors)
    metrics = embedding_metrics(embedding, predicted, embed.neighbors)
    if embed.probe:
        metrics["probe_accuracy"] = round(probe_accuracy(train, codes.splits["test"]), 4)
    every = codes.every_image()
    metrics |= clustering_metrics(every.codes, every.labels, embed)
    print(", ".join(f"{name} {value}" for name, value in metrics.items()))

    code_dim = embedding.codes.shape[1]
    title = f"t-SNE of the {code_dim}-d codes of {embed.size:,} training images"
    save_figure(paths.TSNE, tsne_figure(embedding.points, embedding.labels, title, names))
    classes = [names[label] for label in embedding.labels]
    write_table(paths.TSNE_POINTS, pd.DataFrame({"x": embedding.points[:, 0], "y": embedding.points[:, 1],
                                                 "label": embedding.labels, "class": classes}), float_format="%.3f")
    write_table(paths.CONFUSION, pd.DataFrame({"actual": classes, "predicted": [names[p] for p in predicted]}))
    write_json(paths.EMBED_METRICS, {"size": embed.size, **metrics})


if __name__ == "__main__":
    run_stage(main)
