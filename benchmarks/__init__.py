"""Benchmarks behind ``make bench``: the project's training and t-SNE against the tutorial versions."""
