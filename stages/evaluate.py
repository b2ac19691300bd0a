"""Stage 3: run the trained model over every image. Reconstruction MSE per split and per class, its
mean-image baseline and the test loss of the run's objective; figures of originals over
reconstructions and of images decoded from random codes; and every image's code, for the embed stage."""

from mnist_ae.core import paths
from mnist_ae.core.atomic import save_figure, write_json, write_table
from mnist_ae.core.codes import Codes, CodeSet, save_codes
from mnist_ae.core.dataset import SPLITS, load_split
from mnist_ae.core.errors import run_stage
from mnist_ae.evaluation.figures import reconstructions_figure, samples_figure
from mnist_ae.evaluation.metrics import check_examples, reconstruction_metrics, sample_images
from mnist_ae.models.checkpoint import load_checkpoint, trained_loss
from mnist_ae.models.losses import LOSSES
from mnist_ae.models.reconstruction import assess, decode, encode
from mnist_ae.params import load_params


def main() -> None:
    params = load_params()
    model, metadata = load_checkpoint(paths.CHECKPOINT)
    loss = trained_loss(metadata, paths.CHECKPOINT)  # test_loss is the objective it was trained on
    splits = {name: load_split(paths.PREPARED, name) for name in SPLITS}
    train, test, examples = splits["train"], splits["test"], params.evaluate.examples
    check_examples(examples, train)

    # The objective on the test split alone: test_loss; the others need codes and errors only.
    results = {name: assess(model, split.images, LOSSES[loss] if name == "test" else None)
               for name, split in splits.items()}
    metrics, per_class = reconstruction_metrics(train, test, results)
    print(f"{model.kind} model, reconstruction MSE: train {metrics['train_mse']}, test {metrics['test_mse']}; "
          f"mean-image baseline: train {metrics['baseline_train_mse']}, test {metrics['baseline_test_mse']}; "
          f"test {loss} objective {metrics['test_loss']}")
    save_codes(paths.CODES, CodeSet({name: Codes(results[name].codes.numpy(), split.labels.numpy())
                                     for name, split in splits.items()}, train.classes))
    originals = train.images[examples]
    save_figure(paths.RECONSTRUCTIONS,
                reconstructions_figure(originals.numpy(), decode(model, encode(model, originals)).numpy(),
                                      examples))
    samples = sample_images(model, results["train"].codes, params.evaluate.samples, params.evaluate.seed)
    source = "its prior N(0, I)" if model.has_prior else "a Gaussian fitted to the training codes"
    save_figure(paths.SAMPLES, samples_figure(samples.numpy(), f"{model.kind}: decoded from codes drawn from {source}"))
    write_table(paths.PER_CLASS, per_class)
    write_json(paths.EVALUATE_METRICS, metrics)


if __name__ == "__main__":
    run_stage(main)
