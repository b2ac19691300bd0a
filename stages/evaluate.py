"""Stage 3: reconstruction MSE per split and per class, its mean-image baseline, and a figure of
originals over reconstructions."""

from mnist_ae import paths
from mnist_ae.atomic import save_figure, write_json
from mnist_ae.checkpoint import load_checkpoint
from mnist_ae.classes import class_names
from mnist_ae.dataset import load_split
from mnist_ae.errors import run_stage
from mnist_ae.evaluate import check_examples, reconstruct, reconstruction_metrics
from mnist_ae.figures import reconstructions_figure
from mnist_ae.params import load_params
from mnist_ae.tables import write_csv


def main() -> None:
    params = load_params()
    model, _ = load_checkpoint(paths.CHECKPOINT)
    train, test = load_split(paths.PREPARED, "train"), load_split(paths.PREPARED, "test")
    examples = params.evaluate.examples
    check_examples(examples, train)

    metrics = reconstruction_metrics(model, train, test, class_names(params.data.dataset, params.data.classes))
    print(f"reconstruction MSE: train {metrics['train_mse']}, test {metrics['test_mse']}; "
          f"mean-image baseline: train {metrics['baseline_train_mse']}, test {metrics['baseline_test_mse']}")
    originals = train.images[examples]
    figure = reconstructions_figure(originals.numpy(), reconstruct(model, originals).numpy(), examples)
    save_figure(paths.RECONSTRUCTIONS, figure)
    write_csv(paths.PER_CLASS, ["class", "test_mse"], metrics["test_mse_per_class"].items())
    write_json(paths.EVALUATE_METRICS, metrics)


if __name__ == "__main__":
    run_stage(main)
