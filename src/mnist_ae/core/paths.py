"""Where each stage reads and writes, relative to the project root (the folder ``dvc.yaml`` is in).

``dvc.yaml`` names the same paths; tests/test_dvc_yaml.py fails where the two disagree.
"""

from pathlib import Path

RAW = Path("data/raw")  # downloads, an output of the prepare stage
# A custom dataset's four files: an input the user owns, in no stage's outputs, so that no DVC
# command (checkout, repro) ever deletes it. dvc.yaml lists it as a dependency of the prepare stage.
CUSTOM = Path("data/custom")
PREPARED = Path("data/prepared")
MODELS = Path("data/models")  # the train stage's output folder
CHECKPOINT = MODELS / "autoencoder.pt"
CODES = Path("data/codes.npz")  # every image's code, from evaluate for embed (core/codes.py)
METRICS = Path("metrics")
TRAIN_LOG = METRICS / "train"  # dvclive's folder: metrics.json and plots/metrics/*.tsv
EVALUATE_METRICS = METRICS / "evaluate.json"
PER_CLASS = METRICS / "per_class.csv"  # test MSE per class, drawn as a bar chart
RECONSTRUCTIONS = METRICS / "reconstructions.png"
SAMPLES = METRICS / "samples.png"  # images decoded from random codes
EMBED_METRICS = METRICS / "embed.json"
TSNE = METRICS / "tsne.png"
TSNE_POINTS = METRICS / "tsne.csv"  # the embedding's points and classes, drawn by .dvc/plots/tsne_classes.json
CONFUSION = METRICS / "confusion.csv"  # actual and k-NN-predicted class of each embedded image
PIXEL_BASELINE = METRICS / "pixel_baseline.json"  # k-means on the raw pixels, beside the codes' scores
PIXEL_PREFIX = "pixel_"  # its metrics' names: each the codes' metric of the same steps, behind this
