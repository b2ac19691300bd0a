"""The embed stage: t-SNE of the codes of a seeded subset, its figure, and the k-NN scores."""

CV_FOLDS = 5  # folds of the cross-validated k-NN scores, checked against embed.size in params.yaml
