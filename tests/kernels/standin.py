"""Stand-in kernel programs for the kernel judge's tests (the Metal task's frame, with
KERNEL_SOURCE in the stand-in array language of rayevolve/evaluation/judge/standin.py)."""

CORRECT = """
group = q.shape[1] // k.shape[1]
kk = mx.repeat(k, group, axis=1).astype(mx.float32)
vv = mx.repeat(v, group, axis=1).astype(mx.float32)
scores = mx.matmul(q.astype(mx.float32), kk.swapaxes(2, 3)) * scale
if causal:
    L = q.shape[2]
    S = k.shape[2]
    visible = mx.arange(S)[None, :] <= mx.arange(L)[:, None] + (S - L)
    scores = mx.where(visible, scores, -mx.inf)
out = mx.matmul(mx.softmax(scores, axis=-1), vv).astype(q.dtype)
"""

LAUNCH = """
THREADS = 128

def launch(batch, q_heads, kv_heads, q_len, kv_len, head_dim):
    rows = batch * q_heads * q_len
    return (rows * 32, 1, 1), (THREADS, 1, 1), [("BLOCK", 64)]
"""


def program(kernel: str = CORRECT, block_extra: str = LAUNCH, frame: str = "") -> str:
    """A whole candidate program: a frame (never read by the judge) around one block."""
    return (
        '"""A stand-in GQA kernel."""\n'
        f"{frame}\n"
        "# EVOLVE-BLOCK-START\n"
        f"KERNEL_SOURCE = {kernel!r}\n"
        'KERNEL_HEADER = ""\n'
        f"{block_extra}\n"
        "# EVOLVE-BLOCK-END\n"
    )
