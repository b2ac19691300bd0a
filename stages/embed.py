"""Stage 4: t-SNE of the codes of a random training subset, plotted by class and scored by k-NN."""

from mnist_ae import paths
from mnist_ae.atomic import save_figure, write_json
from mnist_ae.checkpoint import load_checkpoint
from mnist_ae.classes import class_names
from mnist_ae.dataset import load_split
from mnist_ae.embed import embed_subset, embedding_metrics, knn_predictions
from mnist_ae.errors import run_stage
from mnist_ae.figures import tsne_figure
from mnist_ae.params import load_params
from mnist_ae.tables import write_csv


def main() -> None:
    params = load_params()
    names = class_names(params.data.dataset, params.data.classes)
    model, _ = load_checkpoint(paths.CHECKPOINT)
    train = load_split(paths.PREPARED, "train")
    embed = params.embed
    embedding = embed_subset(model, train, embed.size, embed.seed, embed.perplexity, embed.method)
    metrics = embedding_metrics(embedding, embed.neighbors)
    print(f"{embed.neighbors}-NN accuracy: codes {metrics['knn_accuracy_codes']}, t-SNE {metrics['knn_accuracy_tsne']}")
    title = f"t-SNE of the {model.config.code_dim}-d codes of {embed.size:,} training images"
    save_figure(paths.TSNE, tsne_figure(embedding.points, embedding.labels, title, names))
    write_csv(paths.TSNE_POINTS, ["x", "y", "label", "class"],
              ((f"{x:.3f}", f"{y:.3f}", label, names[label])
               for (x, y), label in zip(embedding.points, embedding.labels)))
    predicted = knn_predictions(embedding.codes, embedding.labels, embed.neighbors)
    write_csv(paths.CONFUSION, ["actual", "predicted"],
              ((names[actual], names[guess]) for actual, guess in zip(embedding.labels, predicted)))
    write_json(paths.EMBED_METRICS, {"size": embed.size, **metrics})


if __name__ == "__main__":
    run_stage(main)
