"""Independent audit of a transfer set (data/<task>/transfer.parquet) against the §3.3 augmentation rules.

Deliberately shares no generation code with distill/augment.py: the expected values below are derived from the
rule description (paper §3.3) alone, and the files are only read.

Model of one candidate (per training example, n_iter candidates, independent):
  every word: P(MASK) = p_mask; P(replaced by word w of its tag t) = p_pos * q_t(w) (q = unigram distribution of the
  tag, from tag_unigrams.parquet; w may equal the word itself, then it is unchanged); so P(word unchanged) =
  u = 1 - p_mask - p_pos + p_pos * q_t(word).  Then with probability p_ng the candidate becomes a contiguous n-gram,
  n ~ U{1..5} (clipped), start uniform.  Candidates equal to the original, to an earlier candidate or to any earlier
  row of the file are dropped.

Handling of the dedup bias (the kept rows are a biased sample):
  * Within one origin the kept candidates are the *distinct* outcomes that are not already in the file, so for any
    per-outcome statistic g: E[sum over kept rows of g] = sum_v g(v) (1 - (1 - pi(v))^N) over outcomes v not in the
    file before, pi(v) = P(one candidate = v).  Expanding 1 - (1 - pi)^N = sum_k (-1)^(k+1) C(N, k) pi^k makes every
    sum factorize over word positions (sum_v P(v)^k = prod_i S_i(k), S_i(k) = sum_x p_i(x)^k), so the expectations
    are computed EXACTLY (no simulation) for: kept full-length rows, masked words in them, replaced words in them,
    and replacement words per (tag, word).
  * Full-length checks (1, 3, p_ng) use origins of length > 5 (a full-length row is then certainly not an n-gram)
    that have no other same-length training sentence within Hamming distance <= 1 (incl. exact duplicates): for
    those, collisions with other origins' rows are negligible, so within-origin dedup is the whole bias.
  * n-gram counts (n = 3, 4, 5; origins of length > 5) additionally condition on the observed file: an n-gram
    outcome made only of kept and masked words that already occurs earlier in the file (e.g. the window itself is
    another SST-2 phrase) is removed from the expectation exactly (all 2^n mask patterns are looked up).  Outcomes
    containing a replaced word that collide with other origins' rows are NOT modeled (small).  n = 1, 2 are
    dominated by cross-origin duplicates ("the", "[MASK] ,") and are only reported (INFO), not tested.
  * s.d. of a total = sqrt(sum over origins of (observed - expected)^2) (origins are independent); tolerance 4 s.d.
"""
from __future__ import annotations

import argparse
import sys
from math import comb
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from distill.io import read_parquet

MASK = "[MASK]"
MAX_N = 5
Z_TOL = 4.0


class Report:
    def __init__(self):
        self.rows = []

    def add(self, name, observed, expected, sd=None, status=None):
        if status is None:
            z = (observed - expected) / sd if sd and sd > 0 else (0.0 if observed == expected else np.inf)
            status = "PASS" if abs(z) <= Z_TOL else "FAIL"
        else:
            z = (observed - expected) / sd if sd else np.nan
        self.rows.append((name, observed, expected, sd, z, status))

    def exact(self, name, observed, expected):
        self.rows.append((name, observed, expected, None, np.nan, "PASS" if observed == expected else "FAIL"))

    def info(self, name, observed, expected=None, sd=None):
        self.rows.append((name, observed, expected, sd, np.nan, "INFO"))

    @property
    def failed(self):
        return [r for r in self.rows if r[5] == "FAIL"]

    def print(self, out=None):
        out = out or sys.stdout
        def fmt(x):
            if x is None or (isinstance(x, float) and np.isnan(x)):
                return "-"
            if isinstance(x, (int, np.integer)):
                return str(int(x))
            return f"{x:.6g}"
        w = max(len(r[0]) for r in self.rows)
        print(f"{'quantity':<{w}}  {'observed':>12} {'expected':>12} {'s.d.':>10} {'z':>8}  status", file=out)
        for name, o, e, s, z, st in self.rows:
            print(f"{name:<{w}}  {fmt(o):>12} {fmt(e):>12} {fmt(s):>10} {fmt(z):>8}  {st}", file=out)


def flat_tokens(sentences):
    """(flat token list, lengths) of space-tokenized sentences."""
    sentences = list(sentences)
    lengths = np.fromiter((s.count(" ") + 1 for s in sentences), np.int64, len(sentences))
    words = " ".join(sentences).split(" ") if sentences else []
    return words, lengths


def audit(data_dir: Path, task: str, p_mask: float, p_pos: float, p_ng: float, n_iter: int) -> Report:
    folder = Path(data_dir) / task
    train = read_parquet(folder / "train.parquet", columns=["sentence"])
    tr = read_parquet(folder / "transfer.parquet")
    tags = read_parquet(folder / "postag.parquet", columns=["tags"])["tags"]
    uni = read_parquet(folder / "tag_unigrams.parquet")
    rep = Report()
    m = len(train)
    N = n_iter

    # ---------------- 5, 6: structure, duplicates, n_iter bound ----------------
    orig = tr.iloc[:m]
    rep.exact("originals block == train.parquet (text, order, origin)",
              int((orig["sentence"].to_numpy() == train["sentence"].to_numpy()).all()
                  and (orig["origin"].to_numpy() == np.arange(m)).all() and not orig["synthetic"].any()), 1)
    syn = tr.iloc[m:]
    rep.exact("rows after the originals all synthetic", int(syn["synthetic"].all()), 1)
    dup = tr["sentence"].duplicated().to_numpy()
    rep.info("duplicate sentences inside train.parquet (inherited, not augmentation)", int(dup[:m].sum()))
    rep.exact("check 5: synthetic rows duplicating any earlier row", int(dup[m:].sum()), 0)
    rep.exact("check 5: synthetic rows equal to a training sentence",
              int(syn["sentence"].isin(set(train["sentence"])).sum()), 0)
    per_origin = np.bincount(syn["origin"].to_numpy(), minlength=m)
    rep.exact(f"check 6: origins with > n_iter={N} synthetic rows", int((per_origin > N).sum()), 0)
    rep.info("synthetic rows (kept) / candidates", len(syn), m * N)

    # ---------------- token encoding ----------------
    tr_words, L = flat_tokens(train["sentence"])
    sy_words, sL = flat_tokens(syn["sentence"])
    tag_flat = np.array([t for ts in tags for t in ts], dtype=object)
    if len(tag_flat) != len(tr_words) or not np.array_equal(np.fromiter(map(len, tags), np.int64, len(tags)), L):
        raise SystemExit("postag.parquet does not line up with train.parquet")
    codes, vocab = pd.factorize(np.concatenate([[MASK], uni["word"].to_numpy(object),
                                                np.array(tr_words, object), np.array(sy_words, object)]))
    MASK_ID = 0
    V = len(vocab)
    nu = len(uni)
    u_word = codes[1:1 + nu]
    tok = codes[1 + nu:1 + nu + len(tr_words)].astype(np.int64)
    stok = codes[1 + nu + len(tr_words):].astype(np.int64)
    tcodes, tag_names = pd.factorize(np.concatenate([uni["tag"].to_numpy(object), tag_flat]))
    u_tag, ttag = tcodes[:nu].astype(np.int64), tcodes[nu:].astype(np.int64)
    T = len(tag_names)
    cnt = uni["count"].to_numpy(np.float64)
    tot = np.bincount(u_tag, weights=cnt, minlength=T)
    u_q = cnt / tot[u_tag]
    pair = u_tag * V + u_word
    order = np.argsort(pair)
    pair_sorted, q_sorted = pair[order], u_q[order]

    def q_of(tag, word):
        """q_tag(word), 0 where (tag, word) is not in tag_unigrams (then not a legal replacement)."""
        key = tag * V + word
        i = np.minimum(np.searchsorted(pair_sorted, key), len(pair_sorted) - 1)
        return np.where(pair_sorted[i] == key, q_sorted[i], 0.0)

    off = np.concatenate([[0], np.cumsum(L)])
    soff = np.concatenate([[0], np.cumsum(sL)])
    sorigin = syn["origin"].to_numpy(np.int64)
    q_orig = q_of(ttag, tok)
    rep.exact("training words missing from tag_unigrams under their tag", int((q_orig == 0).sum()), 0)

    # ---------------- per-position S_i(k), k = 1..N ----------------
    ks = np.arange(1, N + 1)
    Qk = np.zeros((T, N))
    np.add.at(Qk, u_tag, u_q[:, None] ** ks[None, :])
    u_keep = 1 - p_mask - p_pos + p_pos * q_orig
    with np.errstate(divide="ignore"):
        repl_k = p_pos ** ks[None, :] * np.maximum(Qk[ttag] - q_orig[:, None] ** ks[None, :], 0.0)  # (W, N)
        S = p_mask ** ks[None, :] + u_keep[:, None] ** ks[None, :] + repl_k
        logS = np.log(S)
    cs = np.vstack([np.zeros((1, N)), np.cumsum(logS, axis=0)])
    binom = np.array([comb(N, k) for k in ks], np.float64)
    sign = np.where(ks % 2 == 1, 1.0, -1.0)

    def f(pi):
        return -np.expm1(N * np.log1p(-np.minimum(pi, 1 - 1e-300)))

    # ---------------- hashing of token windows ----------------
    rng = np.random.default_rng(12345)
    R = rng.integers(1, 2 ** 63, size=64, dtype=np.int64).astype(np.uint64) | np.uint64(1)
    RL = rng.integers(1, 2 ** 63, size=128, dtype=np.int64).astype(np.uint64)

    def tokcode(x):
        return (np.asarray(x).astype(np.uint64) + np.uint64(2))

    # ---------------- full-length rows ----------------
    full = sL == L[sorigin]
    # eligible origins: length > 5, no other same-length training sentence within Hamming distance <= 1
    pos_in = np.arange(len(tok)) - np.repeat(off[:-1], L)
    contrib = tokcode(tok) * R[np.minimum(pos_in, 63)]
    contrib = contrib * (pos_in < 64)  # (lengths > 64 would alias; SST-2 max is 52)
    ex = np.repeat(np.arange(m), L)
    H = np.zeros(m, np.uint64)
    np.add.at(H, ex, contrib)
    H = H + RL[np.minimum(L, 127)]
    wild = H[ex] - contrib + R[np.minimum(pos_in, 63)]  # position pos wildcarded (code 1)
    keys = np.concatenate([H, wild])
    _, inv, counts = np.unique(keys, return_inverse=True, return_counts=True)
    clash = np.zeros(m, bool)
    clash |= counts[inv[:m]] > 1
    np.logical_or.at(clash, ex, counts[inv[m:]] > 1)
    elig = (L > 5) & ~clash
    rep.info("origins used for full-length checks (len > 5, isolated)", int(elig.sum()), int((L > 5).sum()))

    # observed per full-length row
    f_rows = np.flatnonzero(full)
    f_pos = np.concatenate([np.arange(soff[r], soff[r + 1]) for r in f_rows]) if len(f_rows) else np.zeros(0, int)
    f_row_of = np.repeat(f_rows, sL[f_rows])
    f_orig_pos = off[sorigin[f_row_of]] + (f_pos - soff[f_row_of])
    new, old = stok[f_pos], tok[f_orig_pos]
    is_mask = (new == MASK_ID) & (old != MASK_ID)
    is_repl = (new != old) & (new != MASK_ID)
    legal = q_of(ttag[f_orig_pos], new) > 0
    rep.exact("check 2: replaced words not under the original word's tag", int((is_repl & ~legal).sum()), 0)
    if len(f_rows):
        starts = np.cumsum(sL[f_rows]) - sL[f_rows]
        n_same = int((np.add.reduceat((new != old).astype(np.int64), starts) == 0).sum())
    else:
        n_same = 0
    rep.exact("full-length rows equal to their origin", n_same, 0)

    e_ok = elig[sorigin[f_row_of]]
    o_of = sorigin[f_row_of]
    obs_rows = np.bincount(sorigin[f_rows], weights=elig[sorigin[f_rows]], minlength=m)
    obs_mask = np.bincount(o_of[e_ok], weights=is_mask[e_ok], minlength=m)
    obs_repl = np.bincount(o_of[e_ok], weights=is_repl[e_ok], minlength=m)

    # expected per eligible origin
    eo = np.flatnonzero(elig)
    c_full = sign * binom * (1 - p_ng) ** ks  # (N,)
    logprod = cs[off[eo + 1]] - cs[off[eo]]  # (E, N)
    log_u = np.log(u_keep)
    cu = np.concatenate([[0], np.cumsum(log_u)])
    logu_prod = (cu[off[eo + 1]] - cu[off[eo]])[:, None] * ks[None, :]
    exp_rows = (np.exp(logprod) - np.exp(logu_prod)) @ c_full
    pos_e = np.concatenate([np.arange(off[o], off[o + 1]) for o in eo])
    ex_e = np.repeat(np.arange(len(eo)), L[eo])
    Pj = np.exp(logprod[ex_e] - logS[pos_e])  # prod over i != j of S_i(k)   (P_e, N)
    mask_term = (p_mask ** ks[None, :] * Pj) @ c_full
    repl_term = (repl_k[pos_e] * Pj) @ c_full
    exp_mask = np.bincount(ex_e, weights=mask_term, minlength=len(eo))
    exp_repl = np.bincount(ex_e, weights=repl_term, minlength=len(eo))

    words_obs = float((obs_rows[eo] * L[eo]).sum())

    def total(name, obs, exp, scale=1.0, label=None):
        o, e = float(obs.sum()), float(exp.sum())
        sd = float(np.sqrt(((obs - exp) ** 2).sum()))
        rep.add(name, o / scale, e / scale, sd / scale)
        return o, e, sd

    total("check 1: kept full-length rows (dedup-exact)", obs_rows[eo], exp_rows)
    total("check 1: mask rate per word in kept full-length rows", obs_mask[eo], exp_mask, words_obs)
    total("check 1: replacement rate per word (changed words)", obs_repl[eo], exp_repl, words_obs)
    rep.info("  naive (uncorrected) mask rate | p_mask", float(obs_mask[eo].sum() / words_obs), p_mask)

    # p_ng inferred from the number of kept full-length rows: solve E_rows(p) = observed
    def rows_at(p):
        return float(((np.exp(logprod) - np.exp(logu_prod)) @ (sign * binom * (1 - p) ** ks)).sum())
    target = float(obs_rows[eo].sum())
    sd_rows = float(np.sqrt(((obs_rows[eo] - exp_rows) ** 2).sum()))
    try:
        from scipy.optimize import brentq
        p_hat = brentq(lambda p: rows_at(p) - target, 1e-6, 1 - 1e-6)
        slope = (rows_at(p_ng + 1e-4) - rows_at(p_ng - 1e-4)) / 2e-4
        rep.add("check 4: p_ng inferred from kept full-length rows", p_hat, p_ng, abs(sd_rows / slope))
    except ValueError:
        rep.add("check 4: p_ng inferred from kept full-length rows", np.nan, p_ng, 0.0, status="FAIL")

    # ---------------- check 3: replacement words follow the tag unigram distribution ----------------
    rtag = ttag[f_orig_pos][is_repl & e_ok]
    rword = new[is_repl & e_ok]
    # expected per (tag, word): sum_k c_k p_pos^k q_w^k [A_t(k) - B_{t,w}(k)]
    tag_e = ttag[pos_e]
    A = np.zeros((T, N))
    np.add.at(A, tag_e, Pj)
    bkey = tag_e * V + tok[pos_e]
    ub, binv = np.unique(bkey, return_inverse=True)
    B = np.zeros((len(ub), N))
    np.add.at(B, binv, Pj)
    top = pd.Series(rtag).value_counts()
    for t in top.index[:6]:
        sel = u_tag == t
        words_t, q_t = u_word[sel], u_q[sel]
        keys_t = t * V + words_t
        bi = np.searchsorted(ub, keys_t)
        bi = np.minimum(bi, len(ub) - 1)
        Bt = np.where((ub[bi] == keys_t)[:, None], B[bi], 0.0)
        qk = q_t[:, None] ** ks[None, :]
        expct = ((p_pos ** ks[None, :]) * qk * (A[t][None, :] - Bt)) @ c_full
        obs = pd.Series(rword[rtag == t]).value_counts().reindex(words_t, fill_value=0).to_numpy(np.float64)
        expct = expct / expct.sum() * obs.sum()
        big = expct >= 5
        o_c = np.append(obs[big], obs[~big].sum())
        e_c = np.append(expct[big], expct[~big].sum())
        if e_c[-1] < 5:
            o_c, e_c = o_c[:-1], e_c[:-1]
            if len(o_c) and (~big).any():
                o_c[-1] += obs[~big].sum()
                e_c[-1] += expct[~big].sum()
        chi2 = float(((o_c - e_c) ** 2 / e_c).sum())
        df = len(o_c) - 1
        if df < 1:
            continue
        pval = stats.chi2.sf(chi2, df)
        z = float(stats.norm.isf(max(pval, 1e-300)))
        rep.rows.append((f"check 3: chi2 replacement words, tag {tag_names[t]} (n={int(obs.sum())}, df={df})",
                         chi2, float(df), float(np.sqrt(2 * df)), z, "PASS" if z <= Z_TOL else "FAIL"))

    # ---------------- check 4: n-gram rows ----------------
    # every synthetic row must be a legal (masked / same-tag-replaced) contiguous window of its origin
    ng = ~full
    bad_window = 0
    n_ng = {}
    for n in range(1, MAX_N + 1):
        rows_n = np.flatnonzero(ng & (sL == n))
        n_ng[n] = rows_n
        if not len(rows_n):
            continue
        o_n = sorigin[rows_n]
        if (L[o_n] < n).any():
            bad_window += int((L[o_n] < n).sum())
        nwin = np.maximum(L[o_n] - n + 1, 0)
        pr = np.repeat(np.arange(len(rows_n)), nwin)
        start = np.arange(len(pr)) - np.repeat(np.cumsum(nwin) - nwin, nwin)
        ok = np.ones(len(pr), bool)
        for i in range(n):
            a = stok[soff[rows_n[pr]] + i]
            opos = off[o_n[pr]] + start + i
            b = tok[opos]
            ok &= (a == b) | (a == MASK_ID) | (q_of(ttag[opos], a) > 0)
        any_ok = np.zeros(len(rows_n), bool)
        np.logical_or.at(any_ok, pr, ok)
        bad_window += int((~any_ok).sum())
    rep.exact("check 4: rows shorter than origin that are not a legal window", bad_window, 0)
    longer = int((sL > L[sorigin]).sum())
    rep.exact("synthetic rows longer than their origin", longer, 0)
    rep.exact("n-gram rows longer than 5 words", int((ng & (sL > MAX_N)).sum()), 0)

    # expected kept n-gram rows of size n = 3..5 for origins of length > 5 (see module doc)
    long_o = np.flatnonzero(L > 5)
    # hash lookup of every earlier row: string hash -> first origin (-1 for originals)
    all_first = np.concatenate([np.full(m, -1, np.int64), sorigin])
    all_len = np.concatenate([L, sL])
    all_tok = np.concatenate([tok, stok])
    all_off = np.concatenate([off[:-1], len(tok) + soff[:-1]])
    c_ng = sign * binom
    for n in range(1, MAX_N + 1):
        obs_n = np.bincount(sorigin[n_ng[n]], minlength=m).astype(np.float64)[long_o]
        if n < 3:
            rep.info(f"check 4: kept {n}-gram rows, origins len > 5 (cross-origin dedup; untested)",
                     int(obs_n.sum()))
            continue
        # earlier rows of length n
        rows_len = np.flatnonzero(all_len == n)
        hp = np.zeros(len(rows_len), np.uint64)
        for i in range(n):
            hp += tokcode(all_tok[all_off[rows_len] + i]) * R[i]
        srt = np.argsort(hp, kind="stable")
        hp_s, first_s = hp[srt], all_first[rows_len][srt]
        # windows of long origins, grouped by identical text within an origin
        nwin = L[long_o] - n + 1
        w_o = np.repeat(long_o, nwin)
        w_s = off[w_o] + np.arange(nwin.sum()) - np.repeat(np.cumsum(nwin) - nwin, nwin)
        wtok = np.stack([tok[w_s + i] for i in range(n)], axis=1)
        hw = np.zeros(len(w_s), np.uint64)
        for i in range(n):
            hw += tokcode(wtok[:, i]) * R[i]
        g = pd.DataFrame({"o": w_o, "h": hw}).groupby(["o", "h"], sort=False)
        first_idx = g.head(1).index.to_numpy()
        mult = g.size().to_numpy().astype(np.float64)
        # groupby(sort=False).size() follows first appearance order == head(1) order
        w_o, w_s, wtok, hw = w_o[first_idx], w_s[first_idx], wtok[first_idx], hw[first_idx]
        a = p_ng / MAX_N / (L[w_o] - n + 1) * mult
        logwin = cs[w_s + n] - cs[w_s]  # (G, N)
        series = (np.exp(logwin + ks[None, :] * np.log(a)[:, None]) * c_ng[None, :]).sum(1)
        # exact treatment of all mask-only outcomes (kept/masked words): remove from the series, add back with
        # cross-window merging and the "already in the file" condition
        uw = u_keep[w_s[:, None] + np.arange(n)[None, :]]  # (G, n)
        pat_pi, pat_h = [], []
        for b in range(2 ** n):
            bits = np.array([(b >> i) & 1 for i in range(n)], bool)
            pi = a * np.prod(np.where(bits[None, :], p_mask, uw), axis=1)
            h = hw.copy()
            for i in np.flatnonzero(bits):
                h = h - tokcode(wtok[:, i]) * R[i] + tokcode(MASK_ID) * R[i]
            pat_pi.append(pi)
            pat_h.append(h)
        pat_pi = np.concatenate(pat_pi)
        pat_h = np.concatenate(pat_h)
        pat_o = np.tile(w_o, 2 ** n)
        remove = np.bincount(np.tile(np.arange(len(w_o)), 2 ** n), weights=f(pat_pi), minlength=len(w_o))
        df_p = pd.DataFrame({"o": pat_o, "h": pat_h, "pi": pat_pi}).groupby(["o", "h"], sort=False)["pi"].sum()
        mo = df_p.index.get_level_values(0).to_numpy()
        mh = df_p.index.get_level_values(1).to_numpy().astype(np.uint64)
        mpi = df_p.to_numpy()
        i = np.minimum(np.searchsorted(hp_s, mh), max(len(hp_s) - 1, 0))
        in_prev = (len(hp_s) > 0) & (hp_s[i] == mh) & (first_s[i] < mo) if len(hp_s) else np.zeros(len(mh), bool)
        addback = np.where(in_prev, 0.0, f(mpi))
        exp_o = pd.Series(series - remove).groupby(w_o).sum()
        exp_o = exp_o.add(pd.Series(addback).groupby(mo).sum(), fill_value=0.0)
        exp_n = exp_o.reindex(long_o, fill_value=0.0).to_numpy()
        o_tot, e_tot = obs_n.sum(), exp_n.sum()
        sd = float(np.sqrt(((obs_n - exp_n) ** 2).sum()))
        rep.add(f"check 4: kept {n}-gram rows, origins len > 5 (dedup-corrected)", float(o_tot), float(e_tot), sd)
        rep.info(f"  implied p_ng from {n}-grams (~ p_ng * obs/exp)", float(p_ng * o_tot / e_tot))
    return rep


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", type=Path, default=Path("data"))
    ap.add_argument("--task", default="sst2")
    ap.add_argument("--p-mask", type=float, default=0.1)
    ap.add_argument("--p-pos", type=float, default=0.1)
    ap.add_argument("--p-ng", type=float, default=0.25)
    ap.add_argument("--n-iter", type=int, default=20)
    args = ap.parse_args(argv)
    rep = audit(args.data_dir, args.task, args.p_mask, args.p_pos, args.p_ng, args.n_iter)
    rep.print()
    bad = rep.failed
    print(f"\n{len(bad)} check(s) failed" if bad else "\nall checks passed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
