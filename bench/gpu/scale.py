"""Decode against the memory-bandwidth bound, the write-up's fp16 loop, other GPUs' estimates.

- copy_bandwidth(): bytes read plus written per second by a large device-to-device copy
  (torch on the GPU; numpy on the CPU), measured in the same run as the decode figures.
- bound(): decoding one token reads every weight but the token embeddings plus the KV cache
  so far; that many bytes at the copy bandwidth is the fastest decode possible.
- two_point(): decode of the model and of a narrow one with the same layers and kernels
  (a quarter of the layer bytes) separates a bandwidth term from a per-token fixed cost
  (kernel launches, synchronisation, sampling): t = bytes / kernel_bandwidth + fixed.
- writeup_loop(): the write-up's generation: a Hugging Face Llama of the same shape in fp16
  (fp32 on a CPU) and a token-by-token loop that re-encodes the whole sequence each token
  (no KV cache), timed for a few tokens and extrapolated to the reply's length.
- estimates(): what the bandwidth model predicts for an RTX 3060 (360 GB/s) and a Jetson
  AGX Orin (204.8 GB/s), from the efficiency measured here. Estimates, not measurements.
"""

import time
from typing import Any, Dict, Optional

import kit

OTHER_GPUS = {'rtx3060_12gb': 360.0, 'jetson_agx_orin': 204.8}  # GB/s, the vendors' figures


def copy_bandwidth(cpu: bool, gib: float = 2.0) -> Dict[str, Any]:
    """Measure the copy bandwidth (read + write bytes per second) of the device or the host."""
    n = int(gib * 2**30)
    if cpu:
        import numpy as np
        src = np.ones(n // 8, dtype=np.float64)
        dst = np.empty_like(src)
        times = []
        for _ in range(4):
            start = time.perf_counter()
            np.copyto(dst, src)
            times.append(time.perf_counter() - start)
        best = min(times[1:])
        return {'copy_gbs': round(2 * n / best / 1e9, 1), 'how': 'numpy copy in RAM'}
    import torch
    src = torch.empty(n, dtype=torch.uint8, device='cuda')
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    begin.record()
    for _ in range(10):
        dst.copy_(src)
    end.record()
    torch.cuda.synchronize()
    seconds = begin.elapsed_time(end) / 1000 / 10
    del src, dst
    torch.cuda.empty_cache()
    return {'copy_gbs': round(2 * n / seconds / 1e9, 1),
            'how': 'torch device-to-device copy, read + write bytes'}


def bound(info: Dict[str, Any], copy_gbs: float, decode_tps: float,
          context_tokens: int) -> Dict[str, Any]:
    """Bytes read per decoded token and the decode rate they allow at copy_gbs."""
    per_token = info['read_per_token_bytes'] + info['kv_bytes_per_token'] * context_tokens
    limit = copy_gbs * 1e9 / per_token
    return {'read_per_token_mb': round(per_token / 1e6, 1),
            'kv_part_mb': round(info['kv_bytes_per_token'] * context_tokens / 1e6, 1),
            'decode_bound_tps': round(limit, 1),
            'decode_vs_bound': round(decode_tps / limit, 4)}


def two_point(info: Dict, narrow: Dict, decode_tps: float, narrow_tps: float,
              context_tokens: int) -> Optional[Dict[str, Any]]:
    """Solve t = bytes / bandwidth + fixed from the two models' decode times."""
    b1 = info['read_per_token_bytes'] + info['kv_bytes_per_token'] * context_tokens
    b2 = narrow['read_per_token_bytes'] + narrow['kv_bytes_per_token'] * context_tokens
    t1, t2 = 1 / decode_tps, 1 / narrow_tps
    if b1 <= b2 or t1 <= t2:
        return None  # the bigger model was not slower: no fit
    bandwidth = (b1 - b2) / (t1 - t2)
    fixed = max(0.0, t1 - b1 / bandwidth)
    return {'narrow_model': narrow['file'], 'narrow_decode_tps': round(narrow_tps, 2),
            'kernel_gbs': round(bandwidth / 1e9, 1), 'fixed_ms_per_token': round(fixed * 1e3, 3)}


def estimates(info: Dict, copy_gbs: float, decode_vs_bound: float,
              fit: Optional[Dict[str, Any]], context_tokens: int) -> Dict[str, Any]:
    """Decode tokens/s other GPUs would reach by the bandwidth model; labelled estimates."""
    per_token = info['read_per_token_bytes'] + info['kv_bytes_per_token'] * context_tokens
    out: Dict[str, Any] = {'label': 'ESTIMATE from the bandwidth model, not a measurement'}
    for name, gbs in OTHER_GPUS.items():
        row = {'bandwidth_gbs': gbs,
               'bound_tps': round(gbs * 1e9 / per_token, 1),
               'same_efficiency_tps': round(gbs * 1e9 / per_token * decode_vs_bound, 1)}
        if fit:  # the kernels' share of peak bandwidth, plus this machine's fixed cost
            share = fit['kernel_gbs'] / copy_gbs
            seconds = per_token / (gbs * 1e9 * min(share, 1.0)) + fit['fixed_ms_per_token'] / 1e3
            row['two_point_tps'] = round(1 / seconds, 1)
        out[name] = row
    out['how'] = ('same_efficiency: bound x the decode/bound ratio measured here (pessimistic '
                  'where fixed per-token costs dominate, as on a fast GPU); two_point: bytes / '
                  "(that GPU's bandwidth x the kernels' measured share of copy bandwidth) + "
                  "this machine's fixed per-token cost (a slower host CPU, e.g. a Jetson's, "
                  'adds more)')
    return out


def writeup_loop(info: Dict[str, Any], cpu: bool, prompt_tokens: int, reply_tokens: int,
                 steps: int, deadline: float) -> Dict[str, Any]:
    """Time the write-up's no-cache loop on a random Hugging Face Llama of the same shape."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    shape = info['shape'] or {}
    config = LlamaConfig(
        vocab_size=shape.get('vocab', 128256), hidden_size=info['embd'],
        intermediate_size=shape.get('ff', 14336), num_hidden_layers=info['layers'],
        num_attention_heads=info['heads'], num_key_value_heads=info['kv_heads'],
        max_position_embeddings=8192, rope_theta=shape.get('rope_theta', 500000.0),
        tie_word_embeddings=False)
    device, dtype = ('cpu', torch.float32) if cpu else ('cuda', torch.float16)
    kit.say(f'write-up loop: building a random {info["layers"]}-layer Llama in {dtype} on '
            f'{device}')
    torch.manual_seed(0)
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = LlamaForCausalLM(config).eval()
    finally:
        torch.set_default_dtype(old)
    ids = torch.randint(0, config.vocab_size, (1, prompt_tokens), device=device)

    def sync():
        if not cpu:
            torch.cuda.synchronize()
    times = []
    with torch.inference_mode():
        model(ids[:, :16], use_cache=False)  # warm-up
        sync()
        for step in range(steps):
            start = time.perf_counter()
            logits = model(ids, use_cache=False).logits[:, -1]
            ids = torch.cat([ids, logits.argmax(-1, keepdim=True)], dim=1)
            sync()
            times.append(time.perf_counter() - start)
            if time.time() > deadline and step >= 1:
                break
    del model
    if not cpu:
        torch.cuda.empty_cache()
    # each step costs about a + b * length; fit on the measured steps and sum over the reply
    first, measured = times[0], times[1:] or times
    per_step = sum(measured) / len(measured)
    mid_measured = prompt_tokens + 1 + len(measured) / 2
    mid_reply = prompt_tokens + reply_tokens / 2
    decode_s = per_step * mid_reply / mid_measured * (reply_tokens - 1)
    return {'dtype': str(dtype).replace('torch.', ''), 'device': device,
            'prompt_tokens': prompt_tokens, 'steps_measured': len(times),
            'ttft_ms': round(first * 1000, 1),
            'decode_tps': round((reply_tokens - 1) / decode_s, 2),
            'extrapolated': len(times) < reply_tokens,
            'how': 'no KV cache: every new token re-encodes the whole sequence'}
