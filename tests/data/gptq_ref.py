#!/usr/bin/python3
"""Reference for quantizer/gptq.c: GPTQ with per-block scales, in numpy
float64, on small random cases; writes them with the expected codes and
scale codes to a text file that tests/unit/test_gptq.c reads (it runs
this script at test time).

The algorithm, as gptq.h states it: H's never-excited columns get H_jj = 1
and zero weights; H_jj += 0.01 mean(diag H); U = upper Cholesky factor of
H^-1.  Columns left to right; at a block's first column, each row's scale
is the f16-representable one among amax (1 - k/(2 steps)) / qmax,
k = 0..steps-1 (8 steps for 8 bits, else 32), minimizing the
diag(H)-weighted squared error of the block's current weights; codes are
round-half-away-from-zero, clamped; the error over U_jj is subtracted from
the later columns times U[j, :].

Usage: /usr/bin/python3 gptq_ref.py OUT.txt
"""
import sys

try:
    import numpy as np
except ImportError:  # the C test skips (77) without numpy
    sys.exit(77)


def f16(x):
    """f32 -> f16 (round to nearest even) -> f32, as qcodec's f16 scales."""
    return np.float32(np.float16(np.float32(x)))


def round_away(v):
    return np.sign(v) * np.floor(np.abs(v) + 0.5)


def code_range(bits):
    """qcodec's: symmetric [-127, 127] for 8 bits, two's complement below."""
    return (-127, 127) if bits == 8 else (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)


def block_scale(x, h, bits):
    lo, hi = code_range(bits)
    amax = np.abs(x).max()
    if amax == 0:
        return np.float32(0)
    steps = 8 if bits >= 8 else 32
    best, best_d, last = np.inf, np.float32(0), np.float32(-1)
    for k in range(steps):
        target = np.float32(amax) * (np.float32(1) - np.float32(0.5) * np.float32(k) / np.float32(steps)) \
            / np.float32(hi)
        d = f16(target)
        if d == last or not d > 0:
            continue
        last = d
        q = np.clip(round_away(x / np.float64(d)), lo, hi)
        e = float(np.sum(h * (x - np.float64(d) * q) ** 2))
        if e < best:
            best, best_d = e, d
    return best_d


def gptq(w, H, block, bits):
    lo, hi = code_range(bits)
    W = w.astype(np.float64).copy()
    H = H.copy()
    rows, n = W.shape
    dead = np.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    H[np.arange(n), np.arange(n)] += 0.01 * np.mean(np.diag(H))
    diag = np.diag(H).copy()
    L = np.linalg.cholesky(H)
    Linv = np.linalg.inv(L)
    U = np.linalg.cholesky(Linv.T @ Linv).T
    codes = np.zeros((rows, n), dtype=np.int64)
    scales = np.zeros((rows, n // block), dtype=np.float32)
    for c0 in range(0, n, block):
        d = np.array([block_scale(W[r, c0:c0 + block], diag[c0:c0 + block], bits) for r in range(rows)])
        scales[:, c0 // block] = d
        for j in range(c0, c0 + block):
            dd = d.astype(np.float64)
            q = np.where(dd > 0, np.clip(round_away(W[:, j] / np.where(dd > 0, dd, 1)), lo, hi), 0)
            codes[:, j] = q
            e = (W[:, j] - dd * q) / U[j, j]
            W[:, j + 1:] -= np.outer(e, U[j, j + 1:])
    return codes, scales


def case(rng, rows, cols, block, bits, tokens):
    x = rng.standard_normal((tokens, cols))
    x[:, 1] = 0.5 * x[:, 0] + 0.1 * x[:, 1]           # correlated inputs: compensation matters
    x[:, cols // 3] *= 20                               # an outlier channel
    x[:, 5] = 0                                         # a dead channel
    H = x.T @ x
    w = rng.standard_normal((rows, cols)).astype(np.float32) * np.float32(0.05)
    codes, scales = gptq(w, H, block, bits)
    return w, H, codes, scales


def main():
    rng = np.random.default_rng(15)
    with open(sys.argv[1], "w") as f:
        cases = [(5, 96, 32, 4, 200), (3, 64, 64, 3, 150), (4, 64, 32, 8, 100)]
        f.write(f"{len(cases)}\n")
        for rows, cols, block, bits, tokens in cases:
            w, H, codes, scales = case(rng, rows, cols, block, bits, tokens)
            f.write(f"{rows} {cols} {block} {bits}\n")
            f.write(" ".join(f"{v:.9g}" for v in w.ravel()) + "\n")
            f.write(" ".join(f"{v:.17g}" for v in H.ravel()) + "\n")
            f.write(" ".join(str(int(v)) for v in codes.ravel()) + "\n")
            f.write(" ".join(f"{v:.9g}" for v in scales.ravel()) + "\n")


if __name__ == "__main__":
    main()
