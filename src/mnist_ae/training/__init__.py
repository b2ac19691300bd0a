"""The train stage: the loop (``loop.fit``), its hand-written fast step, the device, torchrun ranks
and the per-epoch dvclive log."""
