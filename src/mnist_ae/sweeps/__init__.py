"""Sweeps: plans that expand to numbered experiments, and what runs them on one machine or many."""
