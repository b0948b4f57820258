"""Training and evaluation: the LightningModule, its callbacks, checkpoints, resume and
schedulers."""
