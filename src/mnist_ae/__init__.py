"""A reproducible MNIST auto-encoder pipeline: shared code behind the DVC stages in ``stages/``."""
