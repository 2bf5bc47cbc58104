"""Test-wide settings: one torch thread (small matrices run fastest single-threaded on CPU,
and the suite stays predictable on CI's 2 cores)."""

import torch

torch.set_num_threads(1)
