"""Grouped-query attention for Qwen3-class models as a custom Metal kernel (MLX).

`attention(q, k, v, *, scale, causal)` computes softmax(q k^T * scale) v with
q: (batch, q_heads, L, head_dim), k and v: (batch, kv_heads, S, head_dim), query head h
reading KV head h // (q_heads // kv_heads). L and S are independent (decode: L = 1 with a
long cache); causal masking is aligned to the end (query l sees keys 0 .. l + S - L).
float16 and bfloat16 inputs; accumulation in float32.

The first kernel is deliberately simple: one SIMD group (32 threads) per query row, each
lane owning head_dim / 32 elements, one pass over the keys with an online softmax.
The fixed part below names every kernel by a hash of its source (MLX caches libraries by
name), fixes the output's shape and dtype, and fills outputs with NaN before the kernel
runs, so an element the kernel forgets to write is caught.
"""

import hashlib

import mlx.core as mx

# EVOLVE-BLOCK-START
KERNEL_HEADER = ""

KERNEL_SOURCE = """
    // One SIMD group per query row (b, h, l); lane i owns elements i, i + 32, ... of the row.
    constexpr int PER_LANE = D / 32;
    const uint lane = thread_index_in_simdgroup;
    const uint row = thread_position_in_grid.x / 32;
    const int n_batch = dims[0];
    const int n_q_heads = dims[1];
    const int n_kv_heads = dims[2];
    const int q_len = dims[3];
    const int kv_len = dims[4];
    if (row >= uint(n_batch * n_q_heads * q_len)) {
        return;
    }
    const int l = int(row) % q_len;
    const int h = (int(row) / q_len) % n_q_heads;
    const int b = int(row) / (q_len * n_q_heads);
    const int kv_h = h / (n_q_heads / n_kv_heads);

    const device T* q_row = q + (size_t(b * n_q_heads + h) * q_len + l) * D;
    const device T* k_base = k + size_t(b * n_kv_heads + kv_h) * kv_len * D;
    const device T* v_base = v + size_t(b * n_kv_heads + kv_h) * kv_len * D;

    const float s = scale[0];
    float q_reg[PER_LANE];
    float acc[PER_LANE];
    for (int i = 0; i < PER_LANE; ++i) {
        q_reg[i] = float(q_row[lane + 32 * i]) * s;
        acc[i] = 0.0f;
    }

    float running_max = -INFINITY;
    float running_sum = 0.0f;
    const int last_key = CAUSAL ? min(kv_len - 1, l + kv_len - q_len) : kv_len - 1;
    for (int j = 0; j <= last_key; ++j) {
        const device T* k_row = k_base + size_t(j) * D;
        float partial = 0.0f;
        for (int i = 0; i < PER_LANE; ++i) {
            partial += q_reg[i] * float(k_row[lane + 32 * i]);
        }
        const float score = simd_sum(partial);
        const float new_max = max(running_max, score);
        const float correction = metal::exp(running_max - new_max);
        const float weight = metal::exp(score - new_max);
        running_sum = running_sum * correction + weight;
        const device T* v_row = v_base + size_t(j) * D;
        for (int i = 0; i < PER_LANE; ++i) {
            acc[i] = acc[i] * correction + weight * float(v_row[lane + 32 * i]);
        }
        running_max = new_max;
    }

    device T* out_row = out + (size_t(b * n_q_heads + h) * q_len + l) * D;
    for (int i = 0; i < PER_LANE; ++i) {
        out_row[lane + 32 * i] = static_cast<T>(acc[i] / running_sum);
    }
"""

SIMDGROUPS_PER_THREADGROUP = 4  # query rows per threadgroup (one SIMD group each)


def launch(batch, q_heads, kv_heads, q_len, kv_len, head_dim):
    """Grid (in threads), threadgroup size and extra template constants for one call."""
    rows = batch * q_heads * q_len
    threads = 32 * SIMDGROUPS_PER_THREADGROUP
    return (rows * 32, 1, 1), (threads, 1, 1), []


# EVOLVE-BLOCK-END

_KERNELS = {}


def _kernel():
    """Build once per distinct source; the name carries the source's hash."""
    digest = hashlib.sha256((KERNEL_HEADER + "\0" + KERNEL_SOURCE).encode()).hexdigest()[:16]
    if digest not in _KERNELS:
        _KERNELS[digest] = mx.fast.metal_kernel(
            name=f"gqa_attention_{digest}",
            input_names=["q", "k", "v", "scale", "dims"],
            output_names=["out"],
            source=KERNEL_SOURCE,
            header=KERNEL_HEADER,
            ensure_row_contiguous=True,
        )
    return _KERNELS[digest]


def attention(q, k, v, *, scale, causal=True):
    batch, q_heads, q_len, head_dim = q.shape
    _, kv_heads, kv_len, _ = k.shape
    if head_dim % 32 or q_heads % kv_heads or k.shape != v.shape or k.dtype != q.dtype:
        raise ValueError(
            f"unsupported shapes/dtypes q {q.shape} {q.dtype}, k {k.shape} {k.dtype}, v {v.shape}"
        )
    grid, threadgroup, extra_template = launch(batch, q_heads, kv_heads, q_len, kv_len, head_dim)
    dims = mx.array([batch, q_heads, kv_heads, q_len, kv_len], dtype=mx.int32)
    (out,) = _kernel()(
        inputs=[q, k, v, mx.array([scale], dtype=mx.float32), dims],
        template=[("T", q.dtype), ("D", head_dim), ("CAUSAL", bool(causal)), *extra_template],
        grid=grid,
        threadgroup=threadgroup,
        output_shapes=[q.shape],
        output_dtypes=[q.dtype],
        init_value=float("nan"),
    )
    return out
