#!/usr/bin/env python3
"""Generate tests/fixtures/video/: transformers' ground truth for videos, on the committed tiny-tied
checkpoint (tests/fixtures/tiny-tied/checkpoint, written by make_fixtures.py).

Two clips of different sizes: a list of five 64x96 frames (PNG files, taken as recorded at 2 fps and
used as given: `do_sample_frames=False`) and an animated GIF of nine 80x120 frames 100 ms apart
(10 fps; the processor samples it at its 2 fps: frames 0, 3, 5, 8). The GIF's frames are what PIL
decodes from the file, its rate the frame count over the summed frame durations (what glimpse
reads). Each conversation goes through `Qwen3VLProcessor` (transformers 5.24: prompt text with the
frame timestamps, `pixel_values_videos`, `video_grid_thw`) and `Qwen3VLForConditionalGeneration`
(float32, CPU, eager): final log-probs, M-RoPE positions and the greedy answer are recorded.

Run: python3 scripts/make_video_fixtures.py   (the venv of make_fixtures.py; ~1 min on 2 cores)
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fixture_venv import ensure_running_in_venv  # noqa: E402

if __name__ == "__main__":
    ensure_running_in_venv(__file__)

import json  # noqa: E402
import tempfile  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from transformers import AutoProcessor  # noqa: E402
from transformers.video_utils import VideoMetadata  # noqa: E402

import make_fixtures as mf  # noqa: E402

OUT = mf.FIXTURES / "video"
CHECKPOINT = mf.FIXTURES / "tiny-tied" / "checkpoint"
FRAMES_DIR = "frames_64x96"
FRAMES_FPS = 2.0
GIF_NAME = "clip_80x120.gif"
GIF_FRAMES = 9
GIF_DELAY_MS = 100
SEED = 4321

CONVERSATIONS = [
    ("video_frames", [{"role": "user", "content": [
        {"type": "video", "video": f"video/{FRAMES_DIR}", "fps": FRAMES_FPS},
        {"type": "text", "text": "What happens in this video?"},
    ]}]),
    ("video_gif", [{"role": "user", "content": [
        {"type": "video", "video": f"video/{GIF_NAME}"},
        {"type": "text", "text": "Describe the clip."},
    ]}]),
    ("image_then_video", [
        {"role": "system", "content": "You watch videos."},
        {"role": "user", "content": [
            {"type": "image", "image": "images/small_64x96.png"},
            {"type": "text", "text": "Here is a picture and a clip:"},
            {"type": "video", "video": f"video/{GIF_NAME}"},
            {"type": "text", "text": "Is the picture in the clip?"},
        ]},
    ]),
]


def write_frames(rng: np.random.Generator) -> None:
    """Five different 64x96 frames as PNG files."""
    directory = OUT / FRAMES_DIR
    directory.mkdir(parents=True)
    for i in range(5):
        Image.fromarray(mf.synth_rgb(64, 96, rng)).save(directory / f"frame_{i:02d}.png")


def write_gif(rng: np.random.Generator) -> None:
    """Nine 80x120 paletted frames in which every pixel changes from one frame to the next (so
    every frame is stored whole and opaque), one global 256-colour palette."""
    palette = rng.integers(0, 256, size=(256, 3), dtype=np.uint8)
    base = rng.integers(0, 256, size=(80, 120), dtype=np.uint16)
    frames = []
    for i in range(GIF_FRAMES):
        image = Image.fromarray(((base + 37 * i) % 256).astype(np.uint8), mode="P")
        image.putpalette(palette.flatten().tolist())
        frames.append(image)
    frames[0].save(OUT / GIF_NAME, save_all=True, append_images=frames[1:], duration=GIF_DELAY_MS,
                   loop=0, optimize=False, disposal=1)


def decode_gif(path: Path) -> tuple:
    """Every frame of the GIF as PIL decodes it (RGB), and the clip's average rate."""
    frames, milliseconds = [], 0
    with Image.open(path) as gif:
        for i in range(gif.n_frames):
            gif.seek(i)
            frames.append(np.asarray(gif.convert("RGB")))
            milliseconds += gif.info["duration"]
    return np.stack(frames), len(frames) * 1000.0 / milliseconds


def load_video(part: dict) -> tuple:
    """The frames array, its metadata and whether the processor samples it."""
    path = mf.FIXTURES / part["video"]
    if path.is_dir():
        frames = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in sorted(path.iterdir())])
        # An array, not a list: the processor pads a list of indices in place when it writes the
        # timestamps, and the record must hold the frames used.
        metadata = VideoMetadata(total_num_frames=len(frames), fps=part["fps"],
                                 frames_indices=np.arange(len(frames)))
        return frames, metadata, False
    frames, fps = decode_gif(path)
    return frames, VideoMetadata(total_num_frames=len(frames), fps=fps), True


def run_case(model, processor, name: str, messages: list) -> tuple:
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    parts = [p for m in messages if isinstance(m["content"], list) for p in m["content"]]
    images = [Image.open(mf.FIXTURES / p["image"]).convert("RGB") for p in parts if p["type"] == "image"]
    videos = [load_video(p) for p in parts if p["type"] == "video"]
    # One processor call per sampling mode is not needed: every clip of a case shares it here.
    samples = {sample for _, _, sample in videos}
    assert len(samples) == 1, "a case mixes sampled and given frames"
    inputs = processor(
        text=[text], images=images or None, videos=[v for v, _, _ in videos],
        video_metadata=[m for _, m, _ in videos], do_sample_frames=samples.pop(),
        return_tensors="pt", return_metadata=True, return_mm_token_type_ids=True,
    )
    metadata = inputs.pop("video_metadata")
    record = {
        "name": name,
        "messages": messages,
        "prompt_text": processor.tokenizer.decode(inputs["input_ids"][0]),
        "input_ids": inputs["input_ids"][0].tolist(),
        "image_grid_thw": inputs["image_grid_thw"].tolist() if "image_grid_thw" in inputs else [],
        "video_grid_thw": inputs["video_grid_thw"].tolist(),
        "video_frames": [[int(i) for i in m.frames_indices] for m in metadata],
        "video_fps": [float(m.fps) for m in metadata],
    }
    with torch.no_grad():
        model.model.rope_deltas = None
        logits = model(**inputs, use_cache=False).logits[0, -1]
        positions, delta = model.model.get_rope_index(
            inputs["input_ids"], inputs["mm_token_type_ids"], image_grid_thw=inputs.get("image_grid_thw"),
            video_grid_thw=inputs["video_grid_thw"],
        )
        tokens, margins = mf.greedy_generate(model, inputs)
    record["rope_delta"] = int(delta[0, 0])
    tensors = {
        "pixel_values_videos": inputs["pixel_values_videos"],
        "final_logprobs": torch.log_softmax(logits.to(torch.float32), dim=-1),
        "mrope_position_ids": positions[:, 0].contiguous(),
    }
    record["greedy_tokens"] = tokens
    record["greedy_text"] = processor.tokenizer.decode(tokens, skip_special_tokens=False)
    record["greedy_margins"] = [round(m, 6) for m in margins]
    record["min_greedy_margin"] = min(margins)
    return record, {f"{name}.{k}": v.contiguous() for k, v in tensors.items()}


def main() -> None:
    torch.set_num_threads(1)
    mf.reset_dir(OUT)
    rng = np.random.default_rng(SEED)
    write_frames(rng)
    write_gif(rng)
    with tempfile.TemporaryDirectory() as staging_root:
        staged = mf.stage_checkpoint(CHECKPOINT, Path(staging_root))
        processor = AutoProcessor.from_pretrained(staged)
        model = mf.load_model(staged)
        records, tensors = [], {}
        for name, messages in CONVERSATIONS:
            record, case_tensors = run_case(model, processor, name, messages)
            print(f"{name}: {len(record['input_ids'])} prompt ids, video_grid_thw "
                  f"{record['video_grid_thw']}, min margin {record['min_greedy_margin']:.3f}", flush=True)
            records.append(record)
            tensors.update(case_tensors)
    mf.write_json(OUT / "cases.json", records)
    mf.save_tensors(tensors, OUT / "expected.safetensors")
    versions = mf.package_versions()
    mf.write_json(OUT / "manifest.json", {"checkpoint": "tiny-tied/checkpoint", "seed": SEED,
                                          "versions": versions}, sort_keys=True)


if __name__ == "__main__":
    main()
