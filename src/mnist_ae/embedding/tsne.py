"""The codes of a seeded subset of the training split, embedded in 2-D with t-SNE, and the k-NN
scores of the codes and of the embedding."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import cross_val_predict
from sklearn.neighbors import KNeighborsClassifier

from ..core.codes import Codes
from ..core.errors import UserError
from ..params import CV_FOLDS


@dataclass(frozen=True)
class Embedding:
    codes: np.ndarray  # (size, code_dim)
    points: np.ndarray  # (size, 2)
    labels: np.ndarray  # (size,)


def sample_indices(n_samples: int, size: int, seed: int) -> np.ndarray:
    """A seeded subset of ``size`` distinct indices, sorted so the subset reads in dataset order."""
    if size > n_samples:
        raise UserError(f"embed.size is {size} but the training split has only {n_samples} images")
    return np.sort(np.random.default_rng(seed).choice(n_samples, size=size, replace=False))


def run_tsne(codes: np.ndarray, method: str, perplexity: float, seed: int) -> np.ndarray:
    """2-D t-SNE of ``codes``: openTSNE's, or scikit-learn's Barnes-Hut one."""
    if method == "opentsne":
        return _opentsne(codes, perplexity, seed)
    if method == "sklearn":
        from sklearn.manifold import TSNE

        return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(codes)
    raise ValueError(f"unknown t-SNE method {method!r}; use opentsne or sklearn")


def _opentsne(codes: np.ndarray, perplexity: float, seed: int) -> np.ndarray:
    """openTSNE with its neighbours found exactly (scikit-learn's trees), not approximately (Annoy):
    faster on codes at 2,000 and 10,000 points alike. Its gradient stays its own choice: Barnes-Hut
    below 10,000 points, FFT from there, the faster at each size (docs/performance.md)."""
    from openTSNE import TSNE
    from openTSNE.affinity import PerplexityBasedNN
    from openTSNE.nearest_neighbors import Sklearn

    # The exact index is built here and handed over, as openTSNE's neighbors="exact" would build it:
    # choosing an index itself, openTSNE imports pynndescent (and with it numba) where it is installed,
    # as umap-learn installs it: imports every experiment would pay for nothing.
    index = Sklearn(codes, k=min(len(codes) - 1, int(3 * perplexity)), n_jobs=-1, random_state=seed)
    affinities = PerplexityBasedNN(perplexity=perplexity, knn_index=index, n_jobs=-1, random_state=seed)
    return np.asarray(TSNE(perplexity=perplexity, random_state=seed, n_jobs=-1).fit(codes, affinities=affinities))


def embed_subset(train: Codes, size: int, seed: int, perplexity: float, method: str = "opentsne") -> Embedding:
    """t-SNE of the codes of a seeded subset of the training split."""
    index = sample_indices(len(train), size, seed)
    codes = train.codes[index]
    return Embedding(codes, run_tsne(codes, method, perplexity, seed), train.labels[index])


def knn_predictions(features: np.ndarray, labels: np.ndarray, neighbors: int) -> np.ndarray:
    """Each point's class as predicted by a k-NN classifier fitted on the other (stratified) folds:
    the confusion matrix's input, and the accuracy's."""
    return cross_val_predict(KNeighborsClassifier(n_neighbors=neighbors), features, labels, cv=CV_FOLDS)


def knn_accuracy(features: np.ndarray, labels: np.ndarray, neighbors: int) -> float:
    """Cross-validated accuracy of a k-NN classifier (the share of all points its folds predict right):
    how well the features separate the digits."""
    return float(np.mean(knn_predictions(features, labels, neighbors) == labels))


def embedding_metrics(embedding: Embedding, predicted: np.ndarray, neighbors: int) -> dict[str, float]:
    """The k-NN accuracies of the codes (from their cross-validated ``predicted`` classes, also the
    confusion matrix's: computed once) and of the 2-D embedding."""
    if predicted.shape != embedding.labels.shape:
        raise ValueError(f"{predicted.shape[0]} predictions for {embedding.labels.shape[0]} points")
    return {
        "knn_accuracy_codes": round(float(np.mean(predicted == embedding.labels)), 4),
        "knn_accuracy_tsne": round(knn_accuracy(embedding.points, embedding.labels, neighbors), 4),
    }
