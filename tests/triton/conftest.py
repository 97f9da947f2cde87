"""The Triton task's tests run where Triton and PyTorch are installed (`make test-triton`,
its own environment: CPU PyTorch, Triton's interpreter, numpy < 2.3)."""

import os

os.environ["TRITON_INTERPRET"] = "1"  # before triton is imported anywhere
