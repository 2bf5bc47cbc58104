"""Shared setup of the widget tests: one torch thread (the models are tiny and the suite may
share two cores with other test processes), restored afterwards."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
