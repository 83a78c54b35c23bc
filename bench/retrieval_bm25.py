"""Both BM25 implementations (core/rag/bm25.py) on the same chunks, terms and dense candidates.

Used by bench/retrieval.py --compare-bm25: ranking alone and fused, search latency, open time
and memory at the knowledge base's size and at 10k and 100k chunks (real chunks repeated).
"""

import os
from pathlib import Path
import sqlite3
import time

import numpy as np

from kidscare_llm.core.rag.bm25 import BM25Index, Fts5Index
from kidscare_llm.core.rag.fusion import fuse, relevant


def metrics(ranks):
    """HitRate@1, HitRate@5 and MRR@10 from 1-based ranks (None: not in the top 10)."""
    n = len(ranks)
    return {'hit@1': round(sum(r == 1 for r in ranks) / n, 4),
            'hit@5': round(sum(r is not None and r <= 5 for r in ranks) / n, 4),
            'mrr@10': round(sum(1 / r for r in ranks if r is not None and r <= 10) / n, 4)}


def rank_of(target, sources):
    """Return the 1-based rank of target (a source or a set of equal sources), None if absent."""
    targets = target if isinstance(target, (set, frozenset)) else {target}
    return next((i + 1 for i, s in enumerate(sources) if s in targets), None)


def ranked_sources(passages_or_ids, source_of):
    """Deduplicate a ranked list of chunk ids into document sources, best first."""
    seen = []
    for cid in passages_or_ids:
        src = source_of(cid)
        if src not in seen:
            seen.append(src)
    return seen


def p(values, q):
    """Return the q-th percentile of values (0 for none)."""
    return float(np.percentile(values, q)) if values else 0.0


def rss_mb():
    """Return this process's resident memory now, in MB (Linux)."""
    pages = int(Path('/proc/self/statm').read_text().split()[1])
    return pages * os.sysconf('SC_PAGE_SIZE') / 2**20


def evaluate_bm25(cls, path, items, asked, source_of, kb):
    """Index items with cls in a fresh SQLite file, reopen it, and replay the asked queries."""
    path.unlink(missing_ok=True)
    db = sqlite3.connect(str(path))
    t0 = time.perf_counter()
    index = cls(db)
    for start in range(0, len(items), 5000):
        index.add(items[start:start + 5000])
    db.commit()
    build_s = time.perf_counter() - t0
    db.close()
    before = rss_mb()
    t0 = time.perf_counter()
    index = cls(sqlite3.connect(str(path)))
    figures = {'open_ms': round((time.perf_counter() - t0) * 1000, 1),
               'open_rss_mb': round(rss_mb() - before, 1), 'build_s': round(build_s, 2)}
    alone, fused, lat, refused = [], [], [], 0
    for terms, dense, target in asked:
        t0 = time.perf_counter()
        got = index.search(terms, kb.n_candidates)
        lat.append((time.perf_counter() - t0) * 1000)
        bm25 = dict(got)
        alone.append(rank_of(target, ranked_sources([c for c, _ in got], source_of.get)[:10]))
        scores = fuse(bm25, dense, kb.fusion_weight)
        order = sorted(scores, key=scores.get, reverse=True)
        fused.append(rank_of(target, ranked_sources(order, source_of.get)[:10]))
        refused += not relevant(bm25, dense, kb.min_dense, kb.min_bm25)
    best = [max((s for _, s in index.search(t, 1)), default=0.0) for t, _, _ in asked]
    figures.update({'alone': metrics(alone), 'fused': metrics(fused),
                    'search_p50_ms': round(p(lat, 50), 2), 'search_p95_ms': round(p(lat, 95), 2),
                    'refused_by_floor': round(refused / len(asked), 4),
                    'best_score_p5_p50': [round(p(best, 5), 2), round(p(best, 50), 2)]})
    return figures


def compare_bm25(kb, asked, workdir, sizes=(10_000, 100_000), n_queries=300):
    """Both BM25 implementations on the same chunks, query terms and dense candidates."""
    rows = kb._db.execute('SELECT chunk_id, source, text FROM chunks').fetchall()
    source_of = {cid: src for cid, src, _ in rows}
    items = list(zip(source_of, kb.analyzer.terms_many(t for _, _, t in rows)))
    out = {}
    for size in (len(items),) + tuple(sizes):
        grown = list(items)
        while len(grown) < size:  # real chunks repeated, as run_scale does
            grown += [(f'copy{len(grown) + i}:{cid}', t)
                      for i, (cid, t) in enumerate(items[:size - len(grown)])]
        queries = asked if size == len(items) else asked[:n_queries]
        for cls in (BM25Index, Fts5Index):
            path = workdir / f'{cls.__name__}-{size}.sqlite3'
            got = evaluate_bm25(cls, path, grown, queries, source_of, kb)
            if size != len(items):  # ranks are not meaningful among copies
                got = {k: v for k, v in got.items() if k not in ('alone', 'fused')}
            out[f'{cls.__name__}@{size}'] = got
            print(f'  {cls.__name__} at {size} chunks: {got}', flush=True)
    return out
