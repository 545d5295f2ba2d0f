"""Token-budget batching (TEI's knob): rows sorted longest first, cut greedily so that a batch holds at most
``budget`` padded tokens (rows × its longest row); a row longer than the budget runs alone."""

from __future__ import annotations


def token_budget_batches(lengths: list[int], budget: int) -> list[list[int]]:
    """Row indices of each batch: sorted longest first, at most ``budget`` padded tokens a batch."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])  # stable: ties keep input order
    out: list[list[int]] = []
    cur: list[int] = []
    for i in order:
        # sorted longest first: the first row of a batch is its longest
        if cur and (len(cur) + 1) * lengths[cur[0]] > budget:
            out.append(cur)
            cur = []
        cur.append(i)
    if cur:
        out.append(cur)
    return out
