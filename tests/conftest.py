import os

# Nothing may come from a model hub at test time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import torch  # noqa: E402

torch.set_num_threads(min(2, os.cpu_count() or 1))


import pytest  # noqa: E402

from sew.cpu import capabilities, limit  # noqa: E402


@pytest.fixture(params=["native", "fallback"])
def cpu_path(request):
    """Run a test twice: on oneDNN's products where this CPU has them (skipped with the reason
    elsewhere), and on the plain PyTorch path with oneDNN switched off, which every CPU takes."""
    if request.param == "native":
        if not capabilities().onednn:
            pytest.skip("torch built without oneDNN")
        with limit(onednn_fp32=True):
            yield request.param
    else:
        with limit(onednn=False):
            yield request.param
