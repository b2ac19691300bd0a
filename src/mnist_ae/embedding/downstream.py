"""What the codes are good for, beyond a picture: classification and clustering, each scored with the
labels the auto-encoder never saw.

- **A linear probe**: a logistic regression fitted on the training split's codes and scored on the
  test split's: how much of the class a linear read-out finds in a code.
- **k-means** on the codes of every image (clustering needs no labels to fit): the clustering
  accuracy with each cluster matched to one class (the Hungarian algorithm), the normalised mutual
  information and the adjusted Rand index. The same on the raw pixels (the ``pixel_baseline`` stage)
  says whether the codes cluster better than the images they came from.
- **Clustering in a manifold** (``embed.manifold``), N2D's recipe (McConville et al., 2019): UMAP
  down to a few dimensions with many neighbours and no minimum distance, so that each class's points
  pack together, then a Gaussian mixture; scored as k-means is, beside the pixels through the same steps.
"""

from __future__ import annotations

import time

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ..core.codes import Codes
from ..core.errors import UserError
from ..params import EmbedParams

MANIFOLD_MIN_DIST = 0.0  # N2D's: UMAP packs close points together, which suits clustering, not pictures
# k-means restarts from this many seeded k-means++ starts and keeps the tightest: one start's
# accuracy swings by several points with the seed.
KMEANS_STARTS = 10
# The mixture in the manifold, likewise, from this many seeded k-means starts, the fit of the highest
# likelihood kept (no label involved): from one start, on some UMAP seeds, it stops with two digits
# in one component and another split in two (docs/models.md, "Over seeds").
MIXTURE_STARTS = 10
# Newton-CG: on standardised codes it converges in a few iterations, to L-BFGS's accuracy, faster
# (docs/performance.md).
PROBE_SOLVER, PROBE_ITERATIONS = "newton-cg", 1000


def probe_accuracy(train: Codes, test: Codes) -> float:
    """Accuracy on the test codes of a logistic regression fitted on the training codes."""
    if len(np.unique(train.labels)) < 2 or len(test) == 0:
        raise UserError(f"the linear probe needs a training split of two classes or more and a test split: "
                        f"here {len(np.unique(train.labels))} and {len(test)} images; set embed.probe: false")
    probe = make_pipeline(StandardScaler(), LogisticRegression(solver=PROBE_SOLVER, max_iter=PROBE_ITERATIONS))
    probe.fit(train.codes, train.labels)
    return float(probe.score(test.codes, test.labels))


def kmeans_clusters(features: np.ndarray, clusters: int, seed: int) -> np.ndarray:
    """Each row's k-means cluster, 0..clusters-1."""
    if len(features) < clusters:
        raise UserError(f"embed.clusters is {clusters} but there are only {len(features)} images to cluster")
    return KMeans(n_clusters=clusters, n_init=KMEANS_STARTS, random_state=seed).fit_predict(features)


def matched_accuracy(labels: np.ndarray, clusters: np.ndarray) -> float:
    """The share of images whose cluster's class is theirs, each cluster matched to one class (one to
    one) so that the most images agree: the Hungarian algorithm on the cluster-by-class counts.
    Clusters left without a class (more clusters than classes) count as wrong."""
    counts = np.zeros((clusters.max() + 1, labels.max() + 1), dtype=np.int64)
    np.add.at(counts, (clusters, labels), 1)
    rows, columns = linear_sum_assignment(counts, maximize=True)
    return float(counts[rows, columns].sum() / len(labels))


def clustering_scores(labels: np.ndarray, assigned: np.ndarray, prefix: str) -> dict[str, float]:
    """A clustering's matched accuracy, NMI and ARI against ``labels``, named ``{prefix}_accuracy``..."""
    return {
        f"{prefix}_accuracy": round(matched_accuracy(labels, assigned), 4),
        f"{prefix}_nmi": round(float(normalized_mutual_info_score(labels, assigned)), 4),
        f"{prefix}_ari": round(float(adjusted_rand_score(labels, assigned)), 4),
    }


def manifold_clusters(features: np.ndarray, clusters: int, seed: int, dim: int, neighbors: int) -> np.ndarray:
    """Each row's cluster in a ``dim``-d UMAP embedding of ``features``: a Gaussian mixture's component.
    UMAP is seeded (and then single-threaded), so a rerun gives the same clusters."""
    if len(features) <= max(clusters, neighbors, dim + 1):
        raise UserError(f"the manifold clustering needs more than {max(clusters, neighbors, dim + 1)} images "
                        f"(embed.clusters, embed.manifold_neighbors, embed.manifold_dim): there are {len(features)}")
    # Imported here: umap-learn brings numba, whose import and compilation an experiment without
    # embed.manifold should not pay.
    from umap import UMAP

    reducer = UMAP(n_components=dim, n_neighbors=neighbors, min_dist=MANIFOLD_MIN_DIST, random_state=seed,
                   n_jobs=1)  # what a seed implies: umap-learn runs seeded on one thread (and says so otherwise)
    # No bar: umap-learn's own (verbose=True) interleaves its log lines with it. A line before, one after.
    print(f"manifold clustering: UMAP of {len(features):,} rows of {features.shape[1]} to {dim}-d "
          "(seeded, on one thread: a minute or more for 70,000 rows)...", flush=True)
    started = time.perf_counter()
    embedded = reducer.fit_transform(features)
    print(f"manifold clustering: UMAP took {time.perf_counter() - started:.0f} s", flush=True)
    return mixture_clusters(embedded, clusters, seed)


def mixture_clusters(points: np.ndarray, clusters: int, seed: int) -> np.ndarray:
    """Each point's component in a mixture of ``clusters`` full-covariance Gaussians, the likeliest of
    ``MIXTURE_STARTS`` seeded fits."""
    from sklearn.mixture import GaussianMixture  # beside UMAP's import: only the manifold clustering needs it

    mixture = GaussianMixture(n_components=clusters, covariance_type="full", n_init=MIXTURE_STARTS,
                              random_state=seed)
    started = time.perf_counter()
    assigned = mixture.fit_predict(points)
    print(f"manifold clustering: the mixture, the likeliest of {MIXTURE_STARTS} fits, took "
          f"{time.perf_counter() - started:.0f} s", flush=True)
    return assigned


def clustering_metrics(features: np.ndarray, labels: np.ndarray, embed: EmbedParams) -> dict[str, float]:
    """k-means and, with ``embed.manifold``, the manifold clustering of ``features``, scored against
    ``labels``: one function for the codes (the embed stage) and the pixels (pixel_baseline), so that
    the baseline always goes through the very steps the codes do."""
    scores = clustering_scores(labels, kmeans_clusters(features, embed.clusters, embed.cluster_seed), "cluster")
    if embed.manifold:
        assigned = manifold_clusters(features, embed.clusters, embed.cluster_seed, embed.manifold_dim,
                                     embed.manifold_neighbors)
        scores |= clustering_scores(labels, assigned, "manifold")
    return scores
