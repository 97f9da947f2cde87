"""Grouped-query attention for Qwen3-class models as Triton kernels (NVIDIA GPUs).

softmax(q k^T * scale) v with q: (batch, q_heads, L, head_dim), k and v: (batch,
kv_heads, S, head_dim), query head h reading KV head h // (q_heads // kv_heads); L and S
independent (decode: L = 1 over a long cache); causal masking aligned to the end of the
cache (query l sees keys 0 .. l + S - L); float16 and bfloat16, float32 accumulation.

The candidate is data. KERNELS is Triton source (only `@triton.jit` functions, the two
Triton imports and literals are accepted); launch() maps a shape to a plan: scratch
buffers and the kernels to launch, with their grids, arguments (the judge's tensors
q, k, v, out, the scratch buffers, the symbols "scale" and "causal", or numbers),
compile-time constants, warps and stages. The judge compiles and launches them itself.

The first kernel is split-K ("flash decoding"): one program per (batch, KV head, block of
query rows, split of the keys), where the query rows of a KV head are the GROUP query
heads of each query position, so both heads of a group share one load of K and V; an
online softmax per split; then a second kernel combines the splits' partial results.
"""

# EVOLVE-BLOCK-START
KERNELS = r"""
import triton
import triton.language as tl


@triton.jit
def attend_split(Q, K, V, Part, Mx, Sm, scale, q_len, kv_len, chunk, rows, splits,
                 HQ: tl.constexpr, HKV: tl.constexpr, GROUP: tl.constexpr, D: tl.constexpr,
                 BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, CAUSAL: tl.constexpr):
    bh = tl.program_id(0)
    block = tl.program_id(1)
    split = tl.program_id(2)
    b = bh // HKV
    kvh = bh % HKV
    r = block * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = r < rows
    pos = r // GROUP
    head = kvh * GROUP + r % GROUP
    d = tl.arange(0, D)
    q = tl.load(Q + ((b * HQ + head) * q_len + pos)[:, None] * D + d[None, :],
                mask=row_ok[:, None], other=0.0)
    kv = K + bh * kv_len * D
    vv = V + bh * kv_len * D
    start = split * chunk
    end = tl.minimum(start + chunk, kv_len)
    last = pos + kv_len - q_len
    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, D], tl.float32)
    for n0 in range(start, end, BLOCK_N):
        cols = n0 + tl.arange(0, BLOCK_N)
        col_ok = cols < end
        k = tl.load(kv + cols[:, None] * D + d[None, :], mask=col_ok[:, None], other=0.0)
        s = tl.dot(q, tl.trans(k)) * scale
        visible = row_ok[:, None] & col_ok[None, :]
        if CAUSAL:
            visible = visible & (cols[None, :] <= last[:, None])
        s = tl.where(visible, s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        m_use = tl.where(m_new == float("-inf"), 0.0, m_new)
        alpha = tl.exp(m_i - m_use)
        p = tl.exp(s - m_use[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        v = tl.load(vv + cols[:, None] * D + d[None, :], mask=col_ok[:, None], other=0.0)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
        m_i = m_new
    at = (bh * splits + split) * rows + r
    tl.store(Part + at[:, None] * D + d[None, :], acc, mask=row_ok[:, None])
    tl.store(Mx + at, m_i, mask=row_ok)
    tl.store(Sm + at, l_i, mask=row_ok)


@triton.jit
def combine(Part, Mx, Sm, Out, q_len, rows, splits,
            HQ: tl.constexpr, HKV: tl.constexpr, GROUP: tl.constexpr, D: tl.constexpr,
            BLOCK_S: tl.constexpr):
    bh = tl.program_id(0)
    r = tl.program_id(1)
    b = bh // HKV
    kvh = bh % HKV
    sp = tl.arange(0, BLOCK_S)
    sp_ok = sp < splits
    at = (bh * splits + sp) * rows + r
    m = tl.load(Mx + at, mask=sp_ok, other=float("-inf"))
    l_s = tl.load(Sm + at, mask=sp_ok, other=0.0)
    m_max = tl.max(m, 0)
    w = tl.where(m == float("-inf"), 0.0, tl.exp(m - m_max))
    d = tl.arange(0, D)
    part = tl.load(Part + at[:, None] * D + d[None, :], mask=sp_ok[:, None], other=0.0)
    o = tl.sum(part * w[:, None], 0) / tl.sum(w * l_s, 0)
    pos = r // GROUP
    head = kvh * GROUP + r % GROUP
    tl.store(Out + ((b * HQ + head) * q_len + pos) * D + d, o.to(Out.dtype.element_ty))
"""

BLOCK_N = 64  # keys per step
MAX_BLOCK_M = 64  # query rows per program, at most
TARGET_PROGRAMS = 264  # enough programs to fill an H100/H200 (132 SMs) twice
NUM_WARPS = 4
NUM_STAGES = 2


def launch(batch, q_heads, kv_heads, q_len, kv_len, head_dim):
    group = q_heads // kv_heads
    rows = group * q_len  # query rows of one KV head
    block_m = 16
    while block_m < min(rows, MAX_BLOCK_M):
        block_m *= 2
    blocks = (rows + block_m - 1) // block_m
    key_blocks = (kv_len + BLOCK_N - 1) // BLOCK_N
    programs = batch * kv_heads * blocks
    splits = max(1, min(key_blocks, (TARGET_PROGRAMS + programs - 1) // programs))
    per_split = (key_blocks + splits - 1) // splits
    splits = (key_blocks + per_split - 1) // per_split
    chunk = per_split * BLOCK_N
    block_s = 1
    while block_s < splits:
        block_s *= 2
    pairs = batch * kv_heads
    heads = {"HQ": q_heads, "HKV": kv_heads, "GROUP": group, "D": head_dim}
    return {
        "scratch": {
            "part": {"dtype": "float32", "shape": [pairs, splits, rows, head_dim]},
            "mx": {"dtype": "float32", "shape": [pairs, splits, rows]},
            "sm": {"dtype": "float32", "shape": [pairs, splits, rows]},
        },
        "launches": [
            {
                "kernel": "attend_split",
                "grid": [pairs, blocks, splits],
                "args": [
                    "q",
                    "k",
                    "v",
                    "part",
                    "mx",
                    "sm",
                    "scale",
                    q_len,
                    kv_len,
                    chunk,
                    rows,
                    splits,
                ],
                "constexprs": {**heads, "BLOCK_M": block_m, "BLOCK_N": BLOCK_N, "CAUSAL": "causal"},
                "num_warps": NUM_WARPS,
                "num_stages": NUM_STAGES,
            },
            {
                "kernel": "combine",
                "grid": [pairs, rows],
                "args": ["part", "mx", "sm", "out", q_len, rows, splits],
                "constexprs": {**heads, "BLOCK_S": block_s},
                "num_warps": 4,
                "num_stages": 1,
            },
        ],
    }


# EVOLVE-BLOCK-END
