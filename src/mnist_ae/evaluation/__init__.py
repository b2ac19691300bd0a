"""The evaluate stage: reconstruction metrics overall and per class, and the figures of
reconstructions and of decoded samples."""
