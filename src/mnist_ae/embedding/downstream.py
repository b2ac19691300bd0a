"""What the codes are good for, beyond a picture: classification and clustering, each scored with the
labels the auto-encoder never saw.

- **A linear probe**: a logistic regression fitted on the training split's codes and scored on the
  test split's: how much of the class a linear read-out finds in a code.
- **k-means** on the codes of every image (clustering needs no labels to fit): the clustering
  accuracy with each cluster matched to one class (the Hungarian algorithm), the normalised mutual
  information and the adjusted Rand index. The same on the raw pixels (the ``pixel_baseline`` stage)
  says whether the codes cluster better than the images they came from.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ..core.codes import Codes
from ..core.errors import UserError

# k-means restarts from this many seeded k-means++ starts and keeps the tightest: one start's
# accuracy swings by several points with the seed.
KMEANS_STARTS = 10
PROBE_ITERATIONS = 1000  # L-BFGS's limit: on standardised codes it converges well before


def probe_accuracy(train: Codes, test: Codes) -> float:
    """Accuracy on the test codes of a logistic regression fitted on the training codes."""
    if len(np.unique(train.labels)) < 2 or len(test) == 0:
        raise UserError(f"the linear probe needs a training split of two classes or more and a test split: "
                        f"here {len(np.unique(train.labels))} and {len(test)} images; set embed.probe: false")
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=PROBE_ITERATIONS))
    probe.fit(train.codes, train.labels)
    return float(probe.score(test.codes, test.labels))


def cluster(features: np.ndarray, clusters: int, seed: int) -> np.ndarray:
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


def cluster_scores(features: np.ndarray, labels: np.ndarray, clusters: int, seed: int) -> dict[str, float]:
    """k-means on ``features``, scored against ``labels``."""
    assigned = cluster(features, clusters, seed)
    return {
        "cluster_accuracy": round(matched_accuracy(labels, assigned), 4),
        "cluster_nmi": round(float(normalized_mutual_info_score(labels, assigned)), 4),
        "cluster_ari": round(float(adjusted_rand_score(labels, assigned)), 4),
    }
