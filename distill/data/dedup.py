"""Exact first-occurrence de-duplication of rows that arrive in blocks, holding 8 bytes a row, not the rows.

pandas' duplicated(keep="first") over a sequence of rows (a row: one string per column) is computed as:
  1. every row gets a 64-bit key (a hash of its strings); `first_occurrence` maps each row to the first row with
     its key (its representative), so a row is new by key if it is its own representative;
  2. `ExactCheck` then walks the rows in order, block by block, and compares every row that is a duplicate by key
     with its representative's strings. Equal: a duplicate. Different: a hash collision; that key's rows are
     then de-duplicated on their strings, one by one (a rare path; a test forces it with a tiny hash).
The first rows (the resident ones: the originals) stay in memory; a later row's representative is resident, in
the same block, or in an earlier block: of earlier blocks only such representatives' strings are kept.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

CHUNK = 1 << 20  # rows a step of first_occurrence works on


def first_occurrence(keys: np.ndarray) -> np.ndarray:
    """rep[j] = the first position whose key equals keys[j] (so rep[j] == j: the key's first occurrence).

    Consumes keys (64-bit integers): rep is written into their buffer, and the steps after the sort go in chunks,
    so the peak is the keys, one sort order and a byte a row."""
    n = len(keys)
    order = np.argsort(keys, kind="stable")  # stable: a run of equal keys starts with its first position
    starts = np.ones(n, bool)  # sorted position -> first of its run
    for lo in range(1, n, CHUNK):
        run = keys[order[lo - 1:lo + CHUNK]]
        starts[lo:lo + CHUNK] = run[1:] != run[:-1]
    rep = keys.view(np.int64)  # the keys are not read again
    lead = 0
    for lo in range(0, n, CHUNK):
        at = np.arange(lo, min(lo + CHUNK, n))
        at[~starts[lo:lo + CHUNK]] = lead
        np.maximum.accumulate(at, out=at)  # sorted position -> sorted position of its run's first row
        rep[order[lo:lo + CHUNK]] = order[at]
        lead = at[-1]
    return rep


class ExactCheck:
    """Feed it blocks in order (`keep`); it answers which rows are first occurrences of their strings.

    rep: from `first_occurrence`; resident: {column: strings of rows [0, len)}; starts: the first position of every
    block that will be fed, ascending (so which representatives to carry across blocks is known up front)."""

    def __init__(self, rep: np.ndarray, resident: dict[str, pa.Array], starts: list[int]):
        self.rep, self.resident = rep, resident
        self.n_resident = len(next(iter(resident.values()))) if resident else 0
        need = [np.zeros(0, np.int64)]  # representatives in an earlier block than a row of theirs
        for lo, hi in zip(starts, [*starts[1:], len(rep)]):
            r = rep[lo:hi]
            need.append(np.unique(r[(r >= self.n_resident) & (r < lo)]))
        self.to_carry = np.unique(np.concatenate(need))
        self.carried_pos: list[np.ndarray] = []
        self.carried: dict[str, list[pa.Array]] = {c: [] for c in resident}
        self.seen: dict[int, set] = {}  # collided key (its representative) -> the distinct rows met so far

    def keep(self, lo: int, block: dict[str, pa.Array]) -> np.ndarray:
        """First occurrences among the rows at positions lo, lo + 1, ... (a bool mask)."""
        n = len(next(iter(block.values())))
        rep = self.rep[lo:lo + n]
        keep = rep == np.arange(lo, lo + n)
        dup = np.flatnonzero(~keep)
        carried_pos = np.concatenate(self.carried_pos) if self.carried_pos else np.zeros(0, np.int64)
        r = rep[dup]
        # index of each representative in [resident; carried; this block]
        at = np.where(r < self.n_resident, r, np.where(r < lo, self.n_resident + np.searchsorted(carried_pos, r),
                                                       self.n_resident + len(carried_pos) + r - lo))
        take = pa.array(dup)
        equal = np.ones(len(dup), bool)
        for c, values in block.items():
            pool = pa.chunked_array([self.resident[c], *self.carried[c], values], type=values.type)
            equal &= pc.equal(values.take(take), pool.take(pa.array(at))).to_numpy(zero_copy_only=False)
        if not equal.all() or self.seen:
            self._collisions(lo, block, rep, keep, set(r[~equal].tolist()), carried_pos)
        # carry this block's representatives of later rows
        here = self.to_carry[(self.to_carry >= lo) & (self.to_carry < lo + n)]
        if len(here):
            self.carried_pos.append(here)
            for c, values in block.items():
                self.carried[c].append(values.take(pa.array(here - lo)))
        return keep

    def _collisions(self, lo, block, rep, keep, new, carried_pos) -> None:
        """Keys shared by different strings: keep a row iff its strings are new among that key's rows so far."""
        def row(source: dict, i: int) -> tuple:
            return tuple(source[c][i].as_py() for c in block)

        for g in new - self.seen.keys():
            originals = np.flatnonzero(self.rep[:self.n_resident] == g)
            self.seen[g] = {row(self.resident, i) for i in originals}
            if self.n_resident <= g < lo:  # earlier rows of the key all equal it (no mismatch came up before)
                k = int(np.searchsorted(carried_pos, g))
                self.seen[g].add(row({c: pa.chunked_array(self.carried[c]) for c in block}, k))
        for i in np.flatnonzero(np.isin(rep, list(self.seen))):
            strings, seen = row(block, int(i)), self.seen[int(rep[i])]
            keep[i] = strings not in seen
            seen.add(strings)
