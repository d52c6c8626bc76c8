#!/usr/bin/env python3
"""Generate tests/fixtures/small-trained/: the fixture the quantized profiles' quality is measured on.

The tiny random fixtures are 16-32 wide and chaotic: their greedy path is decided by logit margins
that any rounding flips, so top-1 agreement on them measures chaos, not a profile. This model is
shaped so every quantized matrix has whole q4_K blocks (all widths multiples of 256, as in the 2B)
and is *trained* — briefly, on conversations drawn from a small grammar — so its predictions have
a chat model's confidence profile: near-certain on template, copied and memorised tokens, less
sure where the grammar offers a choice (Zipf-weighted, so the top choice leads by about 1 nat).

Steps: build the model from the official config layout (HF initialisation, fixed seed); zero the
token-embedding rows of every token the corpus never uses (tied embeddings: those logits stay
exactly 0, and the committed fixture stays small); train the language model (the vision tower
stays at its random initialisation but runs in every image conversation, so the text model learns
to read past real image features); round to bf16; run transformers (float32, CPU, eager) greedily
on held-out conversations and record the tokens and margins. The committed checkpoint is sharded
the way larger official checkpoints are: shard 1 holds every tensor but the embedding, and
`embedding_rows.safetensors` holds the embedding's non-zero rows, from which the tests write
shard 2 (tests/common/mod.rs). Run: python3 scripts/make_quality_fixture.py (~25 min on 2 cores).

`--moe` writes tests/fixtures/small-trained-moe/ instead: the same model with every text MLP a
mixture of experts (Qwen3VLMoeForConditionalGeneration, the 30B-A3B architecture: 8 experts of width
512, 2 per token, trained router), so the quantized expert matrices are measured the same way.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fixture_venv import ensure_running_in_venv  # noqa: E402

if __name__ == "__main__":
    ensure_running_in_venv(__file__)

# The imports below need the venv, so they come after the bootstrap above.
import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import dataclasses  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from PIL import Image  # noqa: E402
from transformers import AutoProcessor  # noqa: E402

import make_fixtures as mf  # noqa: E402

NAME = "small-trained"
OUT = mf.FIXTURES / NAME
CONFIG = mf.TinyConfig(
    name=NAME, hidden=256, layers=4, heads=2, kv_heads=1, head_dim=128, intermediate=768,
    mrope_section=(24, 20, 20), tied=True, vision_depth=2, vision_hidden=256, vision_heads=4,
    vision_intermediate=512, num_position_embeddings=256, deepstack_visual_indexes=(0,),
    # Unused here (random_weights is not called): the model starts from transformers' own init.
    seed=7, embedding_std=0.02, lm_head_std=0.02, final_norm_gain=1.0,
)
MOE_NAME = "small-trained-moe"
# Expert width 512, not the hidden 256: with square experts (width = hidden) transformers 5.24
# loaded the written down_proj back without transposing it from the on-disk layout (training-set
# loss 0.41 before writing, 2.96 after loading, 0.46 with down_proj transposed by hand).
MOE_CONFIG = dataclasses.replace(CONFIG, name=MOE_NAME, num_experts=8, experts_per_tok=2, moe_intermediate=512)
SEED = 7
TRAIN_CONVERSATIONS = 3000
TRAIN_STEPS = 3000
LEARNING_RATE = 2e-3
WARMUP_STEPS = 100
MAX_NEW_TOKENS = 64
SHARD_1 = "model-00001-of-00002.safetensors"
SHARD_2 = "model-00002-of-00002.safetensors"
EMBEDDING = "model.language_model.embed_tokens.weight"

# ---------------------------------------------------------------------------------------------
# The grammar the model is trained on
# ---------------------------------------------------------------------------------------------

ZIPF_EXPONENT = 1.5
OBJECTS = ["cat", "dog", "car", "tree", "house", "bird", "cup", "chair", "book", "flower", "boat", "lamp"]
CATEGORY = {"cat": "animal", "dog": "animal", "bird": "animal", "car": "vehicle", "boat": "vehicle",
            "tree": "plant", "flower": "plant", "house": "building", "cup": "object", "chair": "object",
            "book": "object", "lamp": "object"}
COLORS = ["red", "blue", "green", "yellow", "white", "black", "brown", "orange"]
SIZES = ["small", "large", "tiny", "big"]
PLACES = ["on a table", "in a garden", "near a window", "on the street", "by the river", "in a room",
          "under a tree", "on the grass"]
BACKGROUNDS = ["bright", "dark", "blurry", "plain", "colorful"]
MOODS = ["calm", "cheerful", "quiet", "busy", "warm"]
COUNTS = ["two", "three", "four", "five", "six"]
CAPITALS = {"France": "Paris", "Japan": "Tokyo", "Italy": "Rome", "Spain": "Madrid", "Germany": "Berlin",
            "Egypt": "Cairo", "Canada": "Ottawa", "Peru": "Lima"}
SIGNS = ["OPEN", "EXIT", "STOP", "SALE", "WELCOME", "NO PARKING"]
SYSTEM_PROMPTS = ["You are a helpful assistant.", "You are a careful assistant that answers briefly."]


def pick(rng: random.Random, options: list) -> str:
    """A Zipf-weighted choice: the first option is the most likely, by 2^1.5 over the second."""
    return rng.choices(options, weights=[1 / (k + 1) ** ZIPF_EXPONENT for k in range(len(options))])[0]


def other(rng: random.Random, options: list, taken: str) -> str:
    return pick(rng, [o for o in options if o != taken])


def describe(rng: random.Random, brief: bool) -> tuple:
    """(answer, first object, second object) for "describe the image"-style questions."""
    obj = pick(rng, OBJECTS)
    obj2 = other(rng, OBJECTS, obj)
    answer = f"The image shows a {pick(rng, SIZES)} {pick(rng, COLORS)} {obj} {pick(rng, PLACES)}."
    if not brief:
        answer += f" Next to it there is a {pick(rng, COLORS)} {obj2}."
        answer += f" The background is {pick(rng, BACKGROUNDS)}, and the picture looks {pick(rng, MOODS)}."
    return answer, obj, obj2


def image_turn(rng: random.Random, brief: bool) -> tuple:
    """(user text, answer, follow-up (user, answer) or None) for a turn about one image."""
    kind = rng.randrange(5)
    if kind == 0:
        question = rng.choice(["Describe this image.", "What is shown in this photo?", "Describe the picture."])
        answer, obj, obj2 = describe(rng, brief)
        follow = ("Which one is bigger?", f"The {obj} is bigger than the {obj2}.") if not brief else None
        return question, answer, follow
    obj = rng.choice(OBJECTS)
    if kind == 1:
        return f"What color is the {obj}?", f"The {obj} is {pick(rng, COLORS)}.", None
    if kind == 2:
        count = pick(rng, COUNTS)
        answer = f"I can see {count} {obj}s." + ("" if brief else f" They are {pick(rng, PLACES)}.")
        return f"How many {obj}s are there?", answer, None
    if kind == 3:
        sign = pick(rng, SIGNS)
        return "Read the text in the image.", f'The text says "{sign}". It is written in {pick(rng, COLORS)} letters.', None
    answer, obj, _ = describe(rng, True)
    return "What is in the picture?", answer, ("Where is it?", f"The {obj} is {pick(rng, PLACES)}.")


def text_turn(rng: random.Random, brief: bool) -> tuple:
    if rng.random() < 0.4:
        country = rng.choice(list(CAPITALS))
        return f"What is the capital of {country}? Answer in one word.", f"{CAPITALS[country]}.", None
    obj = rng.choice(OBJECTS)
    answer = f"The {obj} is a common {CATEGORY[obj]}."
    if not brief:
        answer += f" It is usually {pick(rng, COLORS)} and {pick(rng, SIZES)}. Many people like to see a {obj} {pick(rng, PLACES)}."
    return f"Tell me about the {obj}.", answer, None


def random_image(rng: random.Random) -> Image.Image:
    height, width = rng.randrange(48, 320), rng.randrange(48, 320)
    return Image.fromarray(mf.synth_rgb(height, width, np.random.default_rng(rng.randrange(2**32))))


def conversation(rng: random.Random) -> list:
    """One training conversation (HF messages ending with an assistant turn)."""
    messages = []
    system = rng.choice([None, None, *SYSTEM_PROMPTS])
    brief = system == SYSTEM_PROMPTS[1]
    if system:
        messages.append({"role": "system", "content": [mf.text(system)]})
    with_image = rng.random() < 0.7
    question, answer, follow = (image_turn if with_image else text_turn)(rng, brief)
    content = ([{"type": "image", "image": random_image(rng)}] if with_image else []) + [mf.text(question)]
    messages.append({"role": "user", "content": content})
    messages.append({"role": "assistant", "content": [mf.text(answer)]})
    if follow and rng.random() < 0.5:
        messages.append({"role": "user", "content": [mf.text(follow[0])]})
        messages.append({"role": "assistant", "content": [mf.text(follow[1])]})
    return messages


# Held-out conversations (fixture images; prompts in the grammar's domain but not all in its exact wording).
EVAL_CONVERSATIONS = [
    ("describe", [{"role": "user", "content": [mf.image("noresize_256x320.png"), mf.text("Describe this image.")]}]),
    ("describe_resized", [{"role": "user", "content": [mf.image("exif_rot6.jpg"), mf.text("What is shown in this photo?")]}]),
    ("describe_odd", [{"role": "user", "content": [mf.image("odd_333x517.png"), mf.text("Describe the picture.")]}]),
    ("describe_brief", [
        {"role": "system", "content": [mf.text(SYSTEM_PROMPTS[1])]},
        {"role": "user", "content": [mf.image("small_64x96.png"), mf.text("Describe this image.")]},
    ]),
    ("color", [{"role": "user", "content": [mf.image("resize_300x200.jpg"), mf.text("What color is the boat?")]}]),
    ("count", [{"role": "user", "content": [mf.image("rgba_200x280.png"), mf.text("How many birds are there?")]}]),
    ("read_text", [{"role": "user", "content": [mf.image("noresize_256x320.png"), mf.text("Read the text in the image.")]}]),
    ("capital", [{"role": "user", "content": [mf.text("What is the capital of Japan? Answer in one word.")]}]),
    ("about", [{"role": "user", "content": [mf.text("Tell me about the lamp.")]}]),
    ("about_system", [
        {"role": "system", "content": [mf.text(SYSTEM_PROMPTS[0])]},
        {"role": "user", "content": [mf.text("Tell me about the flower.")]},
    ]),
    ("follow_up", [
        {"role": "user", "content": [mf.image("resize_300x200.jpg"), mf.text("Describe this image.")]},
        {"role": "assistant", "content": [mf.text(
            "The image shows a large blue dog by the river. Next to it there is a red chair. "
            "The background is dark, and the picture looks warm.")]},
        {"role": "user", "content": [mf.text("Which one is bigger?")]},
    ]),
    ("where", [
        {"role": "user", "content": [mf.image("small_64x96.png"), mf.text("What is in the picture?")]},
        {"role": "assistant", "content": [mf.text("The image shows a tiny green book on the grass.")]},
        {"role": "user", "content": [mf.text("Where is it?")]},
    ]),
    ("two_images", [{"role": "user", "content": [
        mf.image("noresize_256x320.png"), mf.image("resize_300x200.jpg"), mf.text("Describe the picture."),
    ]}]),
]

# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------


def encode(processor, messages: list) -> tuple:
    """(model inputs of the whole conversation, index of the first token of the last answer)."""
    prompt = mf.chat_inputs(processor, messages[:-1])
    full = processor.apply_chat_template(messages, tokenize=True, return_dict=True, return_tensors="pt")
    start = prompt["input_ids"].shape[1]
    if not torch.equal(full["input_ids"][0, :start], prompt["input_ids"][0]):
        raise SystemExit("the chat template's generation prompt is not a prefix of the conversation")
    return full, start


class ActiveRows(torch.nn.Module):
    """The token embedding during training: only the `active` rows, as one small parameter.

    Every other row is zero and stays zero, so training a dense [vocab, hidden] table (whose
    gradient and AdamW state would be rewritten in full at every step) is wasted work; `slot` maps a
    token id to its row here. `scatter_into` writes the trained rows back into the full table.
    """

    def __init__(self, embedding: torch.Tensor, active: torch.Tensor, slot: torch.Tensor):
        super().__init__()
        self.rows = torch.nn.Parameter(embedding[active].detach().clone())
        self.register_buffer("active", active, persistent=False)
        self.register_buffer("slot", slot, persistent=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.rows[self.slot[ids]]

    def scatter_into(self, embedding: torch.Tensor) -> None:
        with torch.no_grad():
            embedding.zero_()
            embedding[self.active] = self.rows


def answer_loss(model, inputs, start: int, rows: ActiveRows) -> torch.Tensor:
    """Mean cross-entropy over the last answer's tokens (and its <|im_end|>), over the whole vocabulary.

    Only the active embedding rows are non-zero (tied embeddings), so every other logit is exactly
    0 and contributes (count) * e^0 to the softmax: the log-sum-exp over the full vocabulary is
    computed exactly without multiplying by the zero rows.
    """
    model.model.rope_deltas = None
    hidden = model.model(**inputs, use_cache=False).last_hidden_state[0]
    ids = inputs["input_ids"][0]
    end = ids.shape[0] - 1  # the template's trailing "\n" after <|im_end|> is not a target
    states, targets = hidden[start - 1:end - 1], ids[start:end]
    logits = states @ rows.rows.T
    zero_rows = math.log(mf.VOCAB_SIZE - rows.rows.shape[0])
    log_norm = torch.logaddexp(torch.logsumexp(logits, dim=-1), torch.tensor(zero_rows))
    return (log_norm - logits.gather(1, rows.slot[targets][:, None])[:, 0]).mean()


def train(model, processor, rng: random.Random) -> dict:
    conversations = [conversation(rng) for _ in range(TRAIN_CONVERSATIONS)]
    used = set()
    for messages in [*conversations, *(m for _, m in EVAL_CONVERSATIONS)]:
        text = processor.apply_chat_template(messages, tokenize=False)
        used.update(processor.tokenizer(text)["input_ids"])  # <|image_pad|> expands to copies of itself
    active = torch.tensor(sorted(used))
    slot = torch.full((mf.VOCAB_SIZE,), -1, dtype=torch.long)
    slot[active] = torch.arange(active.numel())
    language_model = model.model.language_model
    embedding = language_model.embed_tokens
    rows = ActiveRows(embedding.weight, active, slot)
    language_model.embed_tokens = rows
    for param in model.model.visual.parameters():
        param.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad and p is not embedding.weight]  # tied lm_head
    optimizer = torch.optim.AdamW(params, lr=LEARNING_RATE, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / WARMUP_STEPS)
                                                 * 0.5 * (1 + math.cos(math.pi * step / TRAIN_STEPS)))
    model.train()
    began, recent, last = time.time(), [], float("nan")
    for step in range(TRAIN_STEPS):
        inputs, start = encode(processor, conversations[step % len(conversations)])
        loss = answer_loss(model, inputs, start, rows)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        recent.append(loss.item())
        if (step + 1) % 250 == 0:
            last = sum(recent) / len(recent)
            print(f"step {step + 1}: loss {last:.3f} ({time.time() - began:.0f} s)", flush=True)
            recent = []
    model.eval()
    rows.scatter_into(embedding.weight)
    language_model.embed_tokens = embedding
    return {"active_tokens": active.numel(), "final_loss": last, "seconds": round(time.time() - began)}


# ---------------------------------------------------------------------------------------------
# Writing the fixture
# ---------------------------------------------------------------------------------------------


def bf16_tensors(model) -> dict:
    """The weights under their official names and in the official on-disk layout (MoE expert
    tensors transposed), bf16, without the tied lm_head."""
    return {name: mf.disk_layout(name, value.detach()).to(torch.bfloat16).contiguous()
            for name, value in sorted(model.state_dict().items()) if name != "lm_head.weight"}


def write_sharded(checkpoint: Path, staged: Path, tensors: dict) -> None:
    """The committed layout: the staged checkpoint's files, weights split into shard 1 (all but the
    embedding) and the embedding's non-zero rows (shard 2 is rebuilt from them by the tests)."""
    mf.reset_dir(checkpoint)
    for item in staged.iterdir():
        if item.name not in ("model.safetensors", "tokenizer.json"):
            shutil.copy(item, checkpoint / item.name)
    rest = {k: v for k, v in tensors.items() if k != EMBEDDING}
    mf.save_tensors(rest, checkpoint / SHARD_1, metadata={"format": "pt"})
    total = sum(v.numel() * v.element_size() for v in tensors.values())
    weight_map = {**{k: SHARD_1 for k in rest}, EMBEDDING: SHARD_2}
    mf.write_json(checkpoint / "model.safetensors.index.json",
                  {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))})
    embedding = tensors[EMBEDDING]
    ids = torch.nonzero(embedding.to(torch.float32).abs().sum(dim=1)).flatten()
    mf.save_tensors({"ids": ids.to(torch.int64), "rows": embedding[ids].contiguous()},
                    OUT / "embedding_rows.safetensors")


def run_eval(model, processor) -> list:
    records = []
    for name, messages in EVAL_CONVERSATIONS:
        record, _ = mf.run_case(model, processor, name, messages)
        print(f"{name:18s} {len(record['greedy_tokens']):2d} tokens, min margin {record['min_greedy_margin']:.3f}: "
              f"{record['greedy_text']!r}", flush=True)
        records.append(record)
    return records


def write_readme(summary: dict) -> None:
    margins = [m for r in summary["records"] for m in r["greedy_margins"]]
    steps = len(margins)
    low = sum(m < 2.0 for m in margins)
    mlp = ("8 experts of width 512, 2 per token (Qwen3VLMoe)" if CONFIG.moe else "mlp 768")
    flag = " --moe" if CONFIG.moe else ""
    (OUT / "README.md").write_text(f"""# tests/fixtures/{NAME} — the quantization-quality fixture

Written by `scripts/make_quality_fixture.py{flag}` (its module doc says why and how). Qwen3-VL layout,
every quantized matrix width a multiple of 256: text hidden 256, 4 layers, 2 heads / 1 kv head,
head_dim 128, {mlp}, mrope [24, 20, 20], tied embeddings; vision depth 2, hidden 256, 4 heads,
mlp 512, 256 position embeddings, deepstack [0].

Trained {TRAIN_STEPS} steps (AdamW, lr {LEARNING_RATE}, one conversation per step, {summary['train']['seconds']} s,
final loss {summary['train']['final_loss']:.3f} nats per answer token) on {TRAIN_CONVERSATIONS} conversations of a
small grammar (Zipf-weighted choices, exponent {ZIPF_EXPONENT}); the vision tower keeps transformers'
random initialisation. {summary['train']['active_tokens']} token-embedding rows are non-zero; the rest are exactly 0.

- `checkpoint/`: official file layout, sharded: `{SHARD_1}` (bf16, every tensor but
  `{EMBEDDING}`), `model.safetensors.index.json` (names `{SHARD_2}` for the embedding),
  configs and chat template as in the tiny fixtures. No tokenizer.json (tests link it in).
- `embedding_rows.safetensors`: `ids` int64 `[n]`, `rows` bf16 `[n, 256]` — the non-zero rows of the
  embedding; tests/common writes `{SHARD_2}` from them (zeros elsewhere).
- `cases.json`: held-out conversations, fields as in the tiny fixtures' cases.json; greedy decoding
  up to {MAX_NEW_TOKENS} new tokens (transformers float32, CPU, eager, from the bf16 weights).

Greedy steps over all cases: {steps}; top-1/top-2 logit margin < 2 on {low} of them, minimum
{min(margins):.3f}, median {float(np.median(margins)):.2f}. transformers {transformers.__version__}, torch {torch.__version__}.
""")


def main() -> None:
    torch.manual_seed(SEED)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    mf.fetch_tokenizer()
    chat_template = mf.read_chat_template()
    config = mf.official_config(CONFIG)
    config_class, model_class = mf.model_classes(CONFIG)
    model = model_class(config_class(**config))  # edits config's nested dicts, as make_fixtures does
    mf.reset_dir(OUT)
    with tempfile.TemporaryDirectory(prefix="glimpse-quality-") as staging:
        staging = Path(staging)
        mf.write_checkpoint(staging / "checkpoint", config, bf16_tensors(model), chat_template)
        staged = mf.stage_checkpoint(staging / "checkpoint", staging / "staged")
        processor = AutoProcessor.from_pretrained(staged)
        train_summary = train(model, processor, random.Random(SEED))
        tensors = bf16_tensors(model)
        mf.write_checkpoint(staging / "checkpoint", config, tensors, chat_template)
        staged = mf.stage_checkpoint(staging / "checkpoint", staging / "staged")
        torch.set_num_threads(1)
        mf.MAX_NEW_TOKENS = MAX_NEW_TOKENS  # read by mf.greedy_generate
        records = run_eval(mf.load_model(staged, CONFIG.moe), processor)
        write_sharded(OUT / "checkpoint", staged, tensors)
    mf.write_json(OUT / "cases.json", records)
    write_readme({"train": train_summary, "records": records})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--moe", action="store_true", help="write tests/fixtures/small-trained-moe/")
    if parser.parse_args().moe:
        NAME, CONFIG = MOE_NAME, MOE_CONFIG
        OUT = mf.FIXTURES / NAME
    os.chdir(mf.FIXTURES)  # conversation image paths are relative to tests/fixtures/
    main()
