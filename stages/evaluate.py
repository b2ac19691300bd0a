"""Stage 3: reconstruction MSE per split and per class, its mean-image baseline and the test loss of
the run's objective; figures of originals over reconstructions and of images decoded from random codes."""

from mnist_ae.core import paths
from mnist_ae.core.atomic import save_figure, write_json, write_table
from mnist_ae.core.dataset import class_names, load_split
from mnist_ae.core.errors import run_stage
from mnist_ae.core.params import load_params
from mnist_ae.evaluation.figures import reconstructions_figure, samples_figure
from mnist_ae.evaluation.metrics import check_examples, reconstruction_metrics, sample_images
from mnist_ae.models.checkpoint import load_checkpoint
from mnist_ae.models.reconstruction import reconstruct


def main() -> None:
    params = load_params()
    model, _ = load_checkpoint(paths.CHECKPOINT)
    train, test = load_split(paths.PREPARED, "train"), load_split(paths.PREPARED, "test")
    examples = params.evaluate.examples
    check_examples(examples, train)

    names = class_names(params.data.dataset, params.data.classes)
    metrics, per_class = reconstruction_metrics(model, train, test, names, params.train.loss)
    print(f"reconstruction MSE: train {metrics['train_mse']}, test {metrics['test_mse']}; "
          f"mean-image baseline: train {metrics['baseline_train_mse']}, test {metrics['baseline_test_mse']}; "
          f"test {params.train.loss} objective {metrics['test_loss']}")
    originals = train.images[examples]
    save_figure(paths.RECONSTRUCTIONS,
                reconstructions_figure(originals.numpy(), reconstruct(model, originals).numpy(), examples))
    samples = sample_images(model, train.images, params.evaluate.samples, params.evaluate.seed)
    source = "its prior N(0, I)" if model.has_prior else "a Gaussian fitted to the training codes"
    save_figure(paths.SAMPLES, samples_figure(samples.numpy(), f"{params.model.kind}: decoded from codes drawn "
                                                               f"from {source}"))
    write_table(paths.PER_CLASS, per_class)
    write_json(paths.EVALUATE_METRICS, metrics)


if __name__ == "__main__":
    run_stage(main)
