"""The codes of a seeded subset of the training split, embedded in 2-D with t-SNE, and the k-NN
scores of the codes and of the embedding."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import cross_val_predict, cross_val_score
from sklearn.neighbors import KNeighborsClassifier

from ..core.codes import Codes
from ..core.errors import UserError
from . import CV_FOLDS

# openTSNE's FFT grid: 2 intervals per unit of embedding rather than 1 makes the grid 4x smaller once
# the clusters spread out, and the FFT over it each iteration that much cheaper, at the same k-NN
# accuracy (``make bench`` prints both, the time and the accuracy).
OPENTSNE_INTS_IN_INTERVAL = 2


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
    """2-D t-SNE of ``codes``: openTSNE's FFT-accelerated version, or scikit-learn's Barnes-Hut one."""
    if method == "opentsne":
        from openTSNE import TSNE

        tsne = TSNE(perplexity=perplexity, random_state=seed, n_jobs=-1, ints_in_interval=OPENTSNE_INTS_IN_INTERVAL)
        return np.asarray(tsne.fit(codes))
    if method == "sklearn":
        from sklearn.manifold import TSNE

        return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(codes)
    raise ValueError(f"unknown t-SNE method {method!r}; use opentsne or sklearn")


def embed_subset(train: Codes, size: int, seed: int, perplexity: float, method: str = "opentsne") -> Embedding:
    """t-SNE of the codes of a seeded subset of the training split."""
    index = sample_indices(len(train), size, seed)
    codes = train.codes[index]
    return Embedding(codes, run_tsne(codes, method, perplexity, seed), train.labels[index])


def knn_accuracy(features: np.ndarray, labels: np.ndarray, neighbors: int) -> float:
    """Cross-validated accuracy of a k-NN classifier: how well the features separate the digits."""
    classifier = KNeighborsClassifier(n_neighbors=neighbors)
    return float(cross_val_score(classifier, features, labels, cv=CV_FOLDS).mean())


def knn_predictions(features: np.ndarray, labels: np.ndarray, neighbors: int) -> np.ndarray:
    """Each point's class as predicted by a k-NN classifier fitted on the other folds: the
    confusion matrix's input. ``cv=CV_FOLDS`` gives the same stratified folds as ``knn_accuracy``."""
    return cross_val_predict(KNeighborsClassifier(n_neighbors=neighbors), features, labels, cv=CV_FOLDS)


def embedding_metrics(embedding: Embedding, neighbors: int) -> dict[str, float]:
    return {
        "knn_accuracy_codes": round(knn_accuracy(embedding.codes, embedding.labels, neighbors), 4),
        "knn_accuracy_tsne": round(knn_accuracy(embedding.points, embedding.labels, neighbors), 4),
    }
