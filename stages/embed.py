"""Stage 4: t-SNE of the codes of a random training subset, plotted by class and scored by k-NN."""

import pandas as pd

from mnist_ae.core import paths
from mnist_ae.core.atomic import save_figure, write_json, write_table
from mnist_ae.core.dataset import class_names, load_split
from mnist_ae.core.errors import run_stage
from mnist_ae.core.params import load_params
from mnist_ae.embedding.figures import tsne_figure
from mnist_ae.embedding.tsne import embed_subset, embedding_metrics, knn_predictions
from mnist_ae.models.checkpoint import load_checkpoint


def main() -> None:
    params = load_params()
    names = class_names(params.data.dataset, params.data.classes)
    model, _ = load_checkpoint(paths.CHECKPOINT)
    train = load_split(paths.PREPARED, "train")
    embed = params.embed
    embedding = embed_subset(model, train, embed.size, embed.seed, embed.perplexity, embed.method)
    metrics = embedding_metrics(embedding, embed.neighbors)
    print(f"{embed.neighbors}-NN accuracy: codes {metrics['knn_accuracy_codes']}, t-SNE {metrics['knn_accuracy_tsne']}")
    title = f"t-SNE of the {model.code_dim}-d codes of {embed.size:,} training images"
    save_figure(paths.TSNE, tsne_figure(embedding.points, embedding.labels, title, names))
    classes = [names[label] for label in embedding.labels]
    write_table(paths.TSNE_POINTS, pd.DataFrame({"x": embedding.points[:, 0], "y": embedding.points[:, 1],
                                                 "label": embedding.labels, "class": classes}), float_format="%.3f")
    predicted = knn_predictions(embedding.codes, embedding.labels, embed.neighbors)
    write_table(paths.CONFUSION, pd.DataFrame({"actual": classes, "predicted": [names[p] for p in predicted]}))
    write_json(paths.EMBED_METRICS, {"size": embed.size, **metrics})


if __name__ == "__main__":
    run_stage(main)
