"""The embed stage: t-SNE of the codes of a seeded subset, its figure, the k-NN scores, and what else
the codes are good for (downstream.py)."""
