"""The embed stage: t-SNE of the codes of a seeded subset, its figure, and the k-NN scores."""
