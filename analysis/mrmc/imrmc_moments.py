"""Moment sums of iMRMC's U-statistic MRMC analysis, vectorised (see :mod:`analysis.mrmc.imrmc`).

For every pair of treatments ``(t, u)`` (``t = u`` included) iMRMC's ``doAUCmrmcCov`` needs eight
sums over reader pairs ``(r, s)`` (``r = s`` for the first four, all pairs for the last four) of

1. ``sum_ij s_tr(i, j) s_us(i, j)``: products of successes on the same (negative, positive) pair;
2. ``sum_j S_tr(j) S_us(j)`` with ``S(j) = sum_i s(i, j)`` (the placement value of positive j);
3. ``sum_i R_tr(i) R_us(i)`` with ``R(i) = sum_j s(i, j)``;
4. ``T_tr T_us`` with ``T = sum_ij s(i, j)``;

and the same sums of the design indicators (1 where the pair was read) as denominators. Sums 2-4
and every denominator come from per-reader vectors and small matrix products; sum 1 needs the
success matrices, built block by block of negative cases from the ratings' ranks, once per
reader and treatment (the cost grows with readers x negatives x positives, with no Python loop
over cases).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

# Rows of negative cases per block of the success matrices: bounds memory, keeps blocks in cache.
BLOCK = 256


@dataclass(frozen=True)
class Moments:
    """Per treatment pair: the eight biased numerators and denominators (iMRMC numer/denom)."""

    numer: FloatArray  # (T, T, 8)
    denom: FloatArray  # (T, T, 8)
    auc: FloatArray  # (T,)
    reader_auc: FloatArray  # (T, R), NaN where a reader has no read pair


def moments(neg: FloatArray, pos: FloatArray) -> Moments:
    """The biased moment numerators and denominators of every treatment pair.

    ``neg`` (T, R, K0) and ``pos`` (T, R, K1) hold the ratings of the negative and positive
    cases by treatment and reader, NaN where a case was not read.
    """
    n_t, n_r, k0 = neg.shape
    k1 = pos.shape[2]
    dn = (~np.isnan(neg)).astype(np.float64)
    dp = (~np.isnan(pos)).astype(np.float64)
    n0, n1 = dn.sum(axis=2), dp.sum(axis=2)

    # Per reader x treatment: success sums per positive case (col), per negative case (row),
    # sums of squared successes, and the ranks for the success matrices.
    col = np.zeros((n_t, n_r, k1))
    row = np.zeros((n_t, n_r, k0))
    square = np.zeros((n_t, n_r))
    big = k0 + k1 + 1
    rank_dtype = np.int16 if 2 * big < np.iinfo(np.int16).max else np.int32
    rank_neg = np.empty((n_t, n_r, k0), dtype=rank_dtype)
    rank_pos = np.empty((n_t, n_r, k1), dtype=rank_dtype)
    for t in range(n_t):
        for r in range(n_r):
            rn, rp, n_levels = _ranks(neg[t, r], pos[t, r])
            rank_neg[t, r], rank_pos[t, r] = rn, rp
            read_n, read_p = rn < big, rp > -big
            neg_at = np.bincount(rn[read_n], minlength=n_levels).astype(np.float64)
            pos_at = np.bincount(rp[read_p], minlength=n_levels).astype(np.float64)
            below = np.cumsum(neg_at) - neg_at  # negatives strictly below each level
            above = pos_at.sum() - np.cumsum(pos_at)  # positives strictly above each level
            col[t, r, read_p] = below[rp[read_p]] + 0.5 * neg_at[rp[read_p]]
            row[t, r, read_n] = above[rn[read_n]] + 0.5 * pos_at[rn[read_n]]
            square[t, r] = float(np.sum(below[rp[read_p]]) + 0.25 * np.sum(neg_at[rp[read_p]]))
    total = col.sum(axis=2)  # (T, R): sum of successes of each reader

    same_reader, all_pairs = _success_products(rank_neg, rank_pos)
    cross = same_reader / 4.0
    for t in range(n_t):
        cross[t, t] = square[t].sum()
    all_pairs /= 4.0

    numer = np.empty((n_t, n_t, 8))
    denom = np.empty((n_t, n_t, 8))
    col_sum, row_sum = col.sum(axis=1), row.sum(axis=1)
    for t in range(n_t):
        for u in range(t, n_t):
            both0 = np.einsum("ri,ri->r", dn[t], dn[u])
            both1 = np.einsum("rj,rj->r", dp[t], dp[u])
            pair0 = dn[t] @ dn[u].T  # (R, R): negatives read by reader r in t and s in u
            pair1 = dp[t] @ dp[u].T
            numer[t, u] = (
                cross[t, u],
                np.einsum("rj,rj->", col[t], col[u]),
                np.einsum("ri,ri->", row[t], row[u]),
                np.dot(total[t], total[u]),
                all_pairs[t, u],
                np.dot(col_sum[t], col_sum[u]),
                np.dot(row_sum[t], row_sum[u]),
                total[t].sum() * total[u].sum(),
            )
            denom[t, u] = (
                np.dot(both0, both1),
                np.sum(n0[t] * n0[u] * both1),
                np.sum(n1[t] * n1[u] * both0),
                np.sum(n0[t] * n1[t] * n0[u] * n1[u]),
                np.sum(pair0 * pair1),
                n0[t] @ pair1 @ n0[u],
                n1[t] @ pair0 @ n1[u],
                np.sum(n0[t] * n1[t]) * np.sum(n0[u] * n1[u]),
            )
            numer[u, t], denom[u, t] = numer[t, u], denom[t, u]
    pairs_read = n0 * n1
    with np.errstate(invalid="ignore", divide="ignore"):
        reader_auc = np.where(pairs_read > 0, total / pairs_read, np.nan)
    auc = total.sum(axis=1) / pairs_read.sum(axis=1)
    return Moments(numer=numer, denom=denom, auc=auc, reader_auc=reader_auc)


def _ranks(neg: FloatArray, pos: FloatArray) -> tuple[NDArray[np.int64], NDArray[np.int64], int]:
    """Dense ranks of one reader's read ratings; missing negatives +big, positives -big.

    With these ranks ``sign(rank_pos - rank_neg) + 1`` is twice the success, and 0 wherever
    either case was not read.
    """
    values = np.concatenate([neg, pos])
    read = ~np.isnan(values)
    ranks = np.empty(values.size, dtype=np.int64)
    levels, ranks_read = np.unique(values[read], return_inverse=True)
    big = neg.size + pos.size + 1
    ranks[read] = ranks_read
    ranks[: neg.size][~read[: neg.size]] = big
    ranks[neg.size :][~read[neg.size :]] = -big
    return ranks[: neg.size], ranks[neg.size :], levels.size


def _success_products(
    rank_neg: NDArray[np.integer], rank_pos: NDArray[np.integer]
) -> tuple[FloatArray, FloatArray]:
    """Sums over (negative, positive) case pairs of products of twice the success matrices.

    Returns ``same[t, u] = sum_r sum_ij 2s_tr(i, j) 2s_ur(i, j)`` (the same reader in two
    treatments; ``t != u`` only) and ``all[t, u] = sum_ij A_t(i, j) A_u(i, j)`` with
    ``A_t = sum_r 2s_tr``. The success matrices are built block by block of negative cases,
    ``2s = [rank_pos > rank_neg] + [rank_pos >= rank_neg]`` in small integers: this is the one
    step whose cost grows with readers x negatives x positives.
    """
    n_t, n_r, k0 = rank_neg.shape
    k1 = rank_pos.shape[2]
    acc_dtype = np.uint8 if 2 * n_r <= 255 else np.uint16 if 2 * n_r <= 65535 else np.uint32
    same = np.zeros((n_t, n_t))
    all_pairs = np.zeros((n_t, n_t))
    block = min(k0, BLOCK)
    # buffers reused block after block: allocating them anew costs as much as filling them
    twice = np.empty((n_t, block, k1), dtype=np.uint8)
    ties = np.empty((block, k1), dtype=np.uint8)
    product = np.empty((block, k1), dtype=np.uint8)
    summed = np.empty((n_t, block, k1), dtype=acc_dtype)
    for start in range(0, k0, block):
        rows = min(k0, start + block) - start
        summed[:, :rows] = 0
        for r in range(n_r):
            for t in range(n_t):
                neg = rank_neg[t, r, start : start + rows, None]
                pos = rank_pos[t, r][None, :]
                np.greater(pos, neg, out=twice[t, :rows].view(np.bool_))
                np.greater_equal(pos, neg, out=ties[:rows].view(np.bool_))
                np.add(twice[t, :rows], ties[:rows], out=twice[t, :rows])
                np.add(summed[t, :rows], twice[t, :rows], out=summed[t, :rows])
            for t, u in combinations(range(n_t), 2):
                np.multiply(twice[t, :rows], twice[u, :rows], out=product[:rows])  # <= 4
                same[t, u] += float(product[:rows].sum(axis=1, dtype=np.uint32).sum())
        flat = summed[:, :rows].reshape(n_t, -1).astype(np.float64)
        all_pairs += flat @ flat.T
    return same + same.T, all_pairs
