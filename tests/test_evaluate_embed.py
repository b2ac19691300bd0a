import numpy as np
import pytest
import torch
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier

from helpers import model_params
from mnist_ae.core.codes import Codes
from mnist_ae.core.dataset import DIGITS, PIXELS, Split, class_names
from mnist_ae.core.errors import UserError
from mnist_ae.embedding.figures import tsne_figure
from mnist_ae.embedding.tsne import (
    embed_subset,
    embedding_metrics,
    knn_accuracy,
    knn_predictions,
    run_tsne,
    sample_indices,
)
from mnist_ae.evaluation.figures import reconstructions_figure, samples_figure
from mnist_ae.evaluation.metrics import reconstruction_metrics, sample_images
from mnist_ae.models.base import AutoEncoder
from mnist_ae.models.families import FAMILIES, build_model
from mnist_ae.models.losses import LOSSES
from mnist_ae.models.reconstruction import CHUNK, NOISE_SEED, assess, check_learned, encode, mean_image_mse
from mnist_ae.params import CV_FOLDS


def model(kind: str = "mlp") -> AutoEncoder:
    return build_model(model_params(kind), seed=0).eval()


def split(n: int) -> Split:
    return Split(torch.rand(n, PIXELS), torch.arange(n) % 10, tuple("abcdefghij"))


@pytest.mark.parametrize("loss", list(LOSSES))
@pytest.mark.parametrize("kind", list(FAMILIES))
def test_reconstruction_metrics_match_a_direct_computation(kind: str, loss: str) -> None:
    train, test = split(50), split(30)
    ae = model(kind)
    results = {name: assess(ae, part.images, LOSSES[loss]) for name, part in (("train", train), ("test", test))}
    metrics, per_class = reconstruction_metrics(train, test, results)
    with torch.no_grad():
        reconstructions = ae.decode(ae.encode(test.images))
        expected = torch.nn.functional.mse_loss(reconstructions, test.images).item()
        per_image = (reconstructions - test.images).pow(2).mean(dim=1)[7::10].double()
        # As assess draws it: one chunk, a generator seeded with NOISE_SEED (a VAE's sampled code).
        generator = torch.Generator().manual_seed(NOISE_SEED)
        terms = ae.objective_terms(test.images, LOSSES[loss], generator=generator)
        objective = float(ae.combine(terms)) / test.images.numel()
    assert metrics["test_mse"] == pytest.approx(expected, abs=1e-6)  # the MSE, whatever the loss
    assert metrics["test_loss"] == pytest.approx(objective, abs=1e-6)
    assert list(metrics["test_mse_per_class"]) == list("abcdefghij")
    assert metrics["test_mse_per_class"]["h"] == pytest.approx(float(per_image.mean()), abs=1e-6)
    row = per_class.set_index("class").loc["h"]
    assert row["count"] == 3
    assert row["test_mse_median"] == pytest.approx(float(per_image.median()), abs=1e-6)
    assert row["test_mse_p95"] == pytest.approx(float(torch.quantile(per_image, 0.95)), abs=1e-6)
    baseline = torch.nn.functional.mse_loss(train.images.mean(dim=0).expand_as(test.images), test.images).item()
    assert metrics["baseline_test_mse"] == pytest.approx(baseline, abs=1e-6)


@pytest.mark.parametrize("kind", list(FAMILIES))
def test_samples_are_decoded_from_the_prior_or_the_codes_gaussian(kind: str) -> None:
    ae, images = model(kind), torch.rand(40, PIXELS)
    codes = encode(ae, images)
    samples = sample_images(ae, codes, count=10, seed=3)
    assert samples.shape == (10, PIXELS) and samples.min() >= 0 and samples.max() <= 1
    torch.testing.assert_close(sample_images(ae, codes, count=10, seed=3), samples)  # seeded
    assert not torch.equal(sample_images(ae, codes, count=10, seed=4), samples)
    if not ae.has_prior:  # for all but the VAE, codes come from the training codes' own spread
        far = sample_images(ae, encode(ae, images * 0), count=10, seed=3)  # black images: one code, no spread
        assert not torch.allclose(far, samples)
    assert len(samples_figure(samples.numpy(), "t").axes) == 1



@pytest.mark.parametrize("kind", ["mlp", "conv"])
def test_assess_runs_the_model_once_per_chunk_where_the_objective_is_of_the_reconstruction(kind: str) -> None:
    """Every experiment evaluates about 70,000 images: the objective of mlp and conv comes from the
    reconstruction already computed for the errors, not from a second pass of the model."""
    ae, images = model(kind), split(2 * CHUNK + 5).images
    calls = []
    ae.decoder.register_forward_hook(lambda *_: calls.append(1))
    assess(ae, images, LOSSES["mse"])
    assert len(calls) == 3  # one per chunk


def test_a_vae_is_assessed_on_its_objective_as_trained_and_the_same_on_a_rerun() -> None:
    """A VAE trains on the reconstruction of a code drawn from its posterior: its val_loss and
    test_loss are that (seeded: a rerun gives the same bits), not the mean code's reconstruction,
    which its test_mse reports."""
    ae, images, loss = model("vae"), split(40).images, LOSSES["bce"]
    first, again = assess(ae, images, loss), assess(ae, images, loss)
    assert first.objective == again.objective and first.terms == again.terms
    with torch.no_grad():
        of_the_mean = float(loss(ae.decode(ae.encode(images)), images))
        mse_of_the_mean = (ae.decode(ae.encode(images)) - images).pow(2).mean(dim=1)
    assert abs(first.terms["reconstruction"] - of_the_mean) > 1e-3 * of_the_mean  # a sample, not the mean
    torch.testing.assert_close(first.mse, mse_of_the_mean)  # test_mse: the mean code's, as before
    assert first.objective == pytest.approx(first.terms["reconstruction"] + ae.beta * first.terms["kl"])

def test_mean_image_baseline_and_the_check_that_training_beat_it() -> None:
    images = torch.tensor([[0.0, 1.0], [1.0, 1.0]])
    assert mean_image_mse(images, images) == pytest.approx(0.125)  # (0.25 + 0 + 0.25 + 0) / 4
    with pytest.raises(UserError, match=r"MSE on the validation split, 0.0900, is no better than 0.0800, .* mean "
                                        r"image; lower train.lr"):
        check_learned(0.09, 0.08)
    check_learned(0.01, 0.08)


def test_class_names() -> None:
    assert class_names("MNIST")[7] == "7 - seven"
    assert class_names("FashionMNIST")[1] == "Trouser"
    assert class_names("KMNIST")[0] == "o"
    assert class_names("custom", []) == DIGITS
    assert class_names("custom", list("abcdefghij"))[9] == "j"


def test_knn_accuracy_is_cross_validated() -> None:
    """Each point predicted by the other folds, never by itself: the mean of scikit-learn's own
    per-fold scores (folds of equal size here), below what fitting on every point gives."""
    labels = np.repeat(np.arange(10), 20)
    features = np.eye(10)[labels] * 3 + np.random.default_rng(0).normal(size=(200, 10))
    predicted = knn_predictions(features, labels, neighbors=5)
    assert predicted.shape == labels.shape
    folds = cross_val_score(KNeighborsClassifier(n_neighbors=5), features, labels, cv=CV_FOLDS)
    assert knn_accuracy(features, labels, neighbors=5) == pytest.approx(folds.mean())
    resubstituted = KNeighborsClassifier(n_neighbors=5).fit(features, labels).score(features, labels)
    assert knn_accuracy(features, labels, neighbors=5) < resubstituted


def test_sample_indices_are_seeded_distinct_and_bounded() -> None:
    first = sample_indices(100, 20, seed=3)
    assert np.array_equal(first, sample_indices(100, 20, seed=3))
    assert len(set(first.tolist())) == 20 and first.max() < 100
    with pytest.raises(UserError, match=r"embed.size is 101 but the training split has only 100 images"):
        sample_indices(100, 101, seed=0)


def test_knn_accuracy_sees_separable_and_random_features() -> None:
    labels = np.repeat(np.arange(10), 20)
    separable = np.eye(10)[labels] * 10 + np.random.default_rng(0).normal(size=(200, 10))
    assert knn_accuracy(separable, labels, neighbors=5) > 0.95
    noise = np.random.default_rng(1).normal(size=(200, 10))
    assert knn_accuracy(noise, labels, neighbors=5) < 0.3


def test_embedding_and_figures() -> None:
    train = split(300)
    embedding = embed_subset(Codes(encode(model(), train.images).numpy(), train.labels.numpy()), size=150, seed=0,
                             perplexity=10)
    assert embedding.points.shape == (150, 2) and embedding.codes.shape == (150, 4)
    predicted = knn_predictions(embedding.codes, embedding.labels, neighbors=3)
    metrics = embedding_metrics(embedding, predicted, neighbors=3)
    assert metrics == {"knn_accuracy_codes": round(knn_accuracy(embedding.codes, embedding.labels, 3), 4),
                       "knn_accuracy_tsne": round(knn_accuracy(embedding.points, embedding.labels, 3), 4)}
    figure = tsne_figure(embedding.points, embedding.labels, "t", class_names("FashionMNIST"))
    legend = figure.axes[0].get_legend()
    assert "Ankle boot" in [text.get_text() for text in legend.get_texts()]
    images = np.random.rand(3, 784)
    assert len(reconstructions_figure(images, images, [1, 2, 3]).axes) == 6


@pytest.mark.parametrize("method", ["opentsne", "sklearn"])
def test_tsne_methods_are_seeded_and_separate_clusters(method: str) -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 50)
    codes = (np.eye(4)[labels] * 8 + rng.normal(size=(200, 4))).astype(np.float32)
    points = run_tsne(codes, method, perplexity=15, seed=0)
    assert points.shape == (200, 2)
    assert np.array_equal(points, run_tsne(codes, method, perplexity=15, seed=0))
    assert knn_accuracy(points, labels, neighbors=5) > 0.95


def test_unknown_tsne_method() -> None:
    with pytest.raises(ValueError, match="unknown t-SNE method"):
        run_tsne(np.zeros((10, 2)), "umap", perplexity=3, seed=0)
