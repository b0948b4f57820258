"""One compute thread per test worker (and per process a test starts), so that the two pytest
workers share the cores instead of fighting over them."""

import os

os.environ["OMP_NUM_THREADS"] = "1"

import torch  # noqa: E402

torch.set_num_threads(1)
