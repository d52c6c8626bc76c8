#!/usr/bin/env python3
"""Many users at once: streaming chat throughput of an OpenAI-compatible server
(Python stdlib + the `openai` package).

    bench_clients.py --url http://127.0.0.1:8080 --clients 4 --tokens 64
                     [--prompt-words 32] [--requests-per-client 1] [--api-key K]
                     [--label NAME] [--json]
    bench_clients.py compare --glimpse BIN --glimpse-model GGUF
                     --llama-server BIN --llama-model GGUF --threads 8
                     [--clients-list 1,4] [--tokens 64] [--prompt-words 32] [--json]

The first form drives a running server: N threads start together (a barrier), each sends R
streaming chat requests one after the other (`temperature` 0, `max_tokens` = --tokens,
`ignore_eos` so llama-server always generates the full count, `stream_options.include_usage`).
Each client has its own prompt ("Write a long story about <topic>." and W filler words in a
client-specific order), so a prefix cache does not share work between clients. The model is the
first one `GET /v1/models` lists. Per request it records
  TTFT              request sent -> first chunk with non-empty content (or reasoning_content)
  completion tokens `usage.completion_tokens` of the final chunk, else the content chunks
                    received (llama-server streams one token per chunk; glimpse may merge tokens)
  decode time       first content chunk -> last content chunk
and reports
  throughput        all completion tokens / (first request sent -> last request finished)
  aggregate decode  all completion tokens / (earliest first token -> latest last token)
  per-stream decode median over requests of (tokens - 1) / decode time
  TTFT              median and max
as a table, or with --json one JSON object on stdout (the table then goes to stderr).

`during-image` sends a 448x448 image question (a fresh noise image each time) (streamed with `return_progress`) and, at each
given offset, a short text question beside it: the text request's TTFT, and whether the image
turn was encoding its image, reading its prompt or answering when the text request was sent.

`compare` runs, for each client count N, first `glimpse serve --threads T --parallel N` then
`llama-server -t T -np N -c N*2048` (2048 tokens per slot), each on a free port of 127.0.0.1,
one server at a time: it waits for `GET /health` = 200 (at most 300 s), sends one warm-up request,
measures as above with N clients, stops the server (SIGTERM, wait) and prints a markdown table
with, per server, the throughput and the aggregate decode tok/s with N clients divided by those
with the fewest clients.

The decode span starts at the earliest first token, so it also covers the other clients' prompt
processing when a server staggers it: with few tokens per request (--tokens 8) that time
dominates and the aggregate decode rate mostly measures prefill; use 64 or more.

Both servers honour `ignore_eos`; the rates divide by the tokens actually generated, and the
`tokens` column shows the counts.
"""

import argparse
import base64
import json
import os
import random
import shlex
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import zlib

try:
    import openai
except ImportError:
    sys.exit("bench_clients.py: the `openai` package is missing (pip install openai)")

TOPICS = [
    "a lighthouse keeper", "a lost violin", "the first city on Mars", "a talking crow",
    "a river that flows uphill", "an old clockmaker", "a desert library", "a submarine cook",
    "a dragon who fears heights", "a robot gardener", "the last snowfall", "a bridge builder",
    "a haunted train station", "twin astronomers", "a village of glassblowers", "a pirate cartographer",
]
FILLER = (
    "amber basalt cedar delta ember fjord granite harbor iris juniper kestrel lagoon meadow nickel "
    "orchid prairie quartz raven saffron tundra umber velvet willow xenon yarrow zephyr"
).split()
HEALTH_TIMEOUT_S = 300.0
SLOT_CTX = 2048


class BenchError(Exception):
    pass


def prompt_for(client, words):
    topic = TOPICS[client % len(TOPICS)]
    if client >= len(TOPICS):
        topic += f" (version {client // len(TOPICS) + 1})"
    # A different stride per client: the filler differs from the first word on as well.
    stride = 2 * client + 1
    filler = [FILLER[(client + k * stride) % len(FILLER)] for k in range(words)]
    text = f"Write a long story about {topic}."
    if filler:
        text += " Use these words: " + " ".join(filler) + "."
    return text


def make_client(url, api_key, timeout):
    return openai.OpenAI(
        base_url=url.rstrip("/") + "/v1",
        api_key=api_key or "none",
        max_retries=0,
        timeout=timeout,
    )


def first_model(client, url):
    try:
        models = client.models.list().data
    except openai.APIConnectionError as e:
        raise BenchError(f"cannot reach the server at {url}: {e}") from e
    except openai.APIError as e:
        raise BenchError(f"GET {url}/v1/models failed: {e}") from e
    if not models:
        raise BenchError(f"GET {url}/v1/models lists no model")
    return models[0].id


def stream_one(client, model, prompt, max_tokens, ignore_eos, logprobs=False):
    """One streaming request -> its timings and token count. With `logprobs`, a chunk that
    carries a token's log-probability counts as a token even when its text is held back (a
    token that ends inside a UTF-8 character), so TTFT is the first token's time."""
    extra = {"ignore_eos": True} if ignore_eos else None
    sent = time.perf_counter()
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": prompt}],
        stream=True,
        temperature=0,
        max_tokens=max_tokens,
        stream_options={"include_usage": True},
        extra_body=extra,
        **({"logprobs": True} if logprobs else {}),
    )
    first = last = None
    chunks = 0
    usage_tokens = prompt_tokens = None
    for chunk in stream:
        if chunk.usage is not None and chunk.usage.completion_tokens is not None:
            usage_tokens = chunk.usage.completion_tokens
            prompt_tokens = chunk.usage.prompt_tokens
        for choice in chunk.choices:
            delta = choice.delta
            if delta is None:
                continue
            text = (delta.content or "") + (getattr(delta, "reasoning_content", None) or "")
            scored = bool(logprobs and choice.logprobs and choice.logprobs.content)
            if text or scored:
                now = time.perf_counter()
                if first is None:
                    first = now
                last = now
                chunks += 1
    done = time.perf_counter()
    return {
        "sent": sent,
        "first": first,
        "last": last,
        "done": done,
        "chunks": chunks,
        "usage_tokens": usage_tokens,
        "prompt_tokens": prompt_tokens,
        "tokens": usage_tokens if usage_tokens is not None else chunks,
    }


def describe_error(e):
    if isinstance(e, openai.APIConnectionError):
        return f"connection failed: {e}"
    if isinstance(e, openai.APIStatusError):
        return f"HTTP {e.status_code}: {e.message}"
    return f"{type(e).__name__}: {e}"


def measure(url, clients, tokens, prompt_words=32, requests_per_client=1, api_key=None,
            label=None, ignore_eos=True, timeout=600.0):
    """Runs the clients against `url`; returns the summary (raises BenchError on a failure)."""
    client = make_client(url, api_key, timeout)
    model = first_model(client, url)
    barrier = threading.Barrier(clients)
    records = [[] for _ in range(clients)]
    errors = []

    def run(i):
        prompt = prompt_for(i, prompt_words)
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            return
        for r in range(requests_per_client):
            try:
                records[i].append(stream_one(client, model, prompt, tokens, ignore_eos))
            except Exception as e:  # noqa: BLE001 - every failure is reported below
                errors.append(f"client {i} request {r}: {describe_error(e)}")
                return

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise BenchError(f"{len(errors)} request(s) failed against {url}:\n  " + "\n  ".join(errors))
    return summarize([r for rs in records for r in rs], url, model, clients, tokens,
                     prompt_words, requests_per_client, label)


def summarize(reqs, url, model, clients, tokens, prompt_words, requests_per_client, label):
    streamed = [r for r in reqs if r["first"] is not None]
    if not streamed:
        raise BenchError(f"no request to {url} streamed any content")
    total = sum(r["tokens"] for r in reqs)
    start = min(r["sent"] for r in reqs)
    wall = max(r["done"] for r in reqs) - start
    span = max(r["last"] for r in streamed) - min(r["first"] for r in streamed)
    ttfts = [r["first"] - r["sent"] for r in streamed]
    per_stream = [
        (r["tokens"] - 1) / (r["last"] - r["first"])
        for r in streamed
        if r["tokens"] > 1 and r["last"] > r["first"]
    ]
    from_usage = sum(r["usage_tokens"] is not None for r in reqs)
    return {
        "label": label,
        "url": url,
        "model": model,
        "clients": clients,
        "requests_per_client": requests_per_client,
        "max_tokens": tokens,
        "prompt_words": prompt_words,
        "requests": len(reqs),
        "completion_tokens": total,
        "token_source": "usage" if from_usage == len(reqs) else
                        "chunks" if from_usage == 0 else "mixed",
        "wall_s": wall,
        "throughput_tok_s": total / wall if wall > 0 else None,
        "decode_span_s": span,
        "aggregate_decode_tok_s": total / span if span > 0 else None,
        "per_stream_decode_tok_s_median": statistics.median(per_stream) if per_stream else None,
        "per_stream_decode_tok_s_min": min(per_stream) if per_stream else None,
        "per_stream_decode_tok_s_max": max(per_stream) if per_stream else None,
        "ttft_s_median": statistics.median(ttfts),
        "ttft_s_max": max(ttfts),
        "per_request": [
            {
                "ttft_s": r["first"] - r["sent"] if r["first"] is not None else None,
                "decode_s": r["last"] - r["first"] if r["first"] is not None else None,
                "tokens": r["tokens"],
                "chunks": r["chunks"],
                "total_s": r["done"] - r["sent"],
            }
            for r in reqs
        ],
    }


def fmt(value, spec=".1f", unit=""):
    return "-" if value is None else f"{value:{spec}}{unit}"


def print_table(s, out):
    name = s["label"] or s["url"]
    print(f"{name}: model {s['model']}, {s['clients']} client(s) x {s['requests_per_client']} "
          f"request(s), max_tokens {s['max_tokens']}, {s['prompt_words']} filler words", file=out)
    rows = [
        ("requests", f"{s['requests']}"),
        ("completion tokens", f"{s['completion_tokens']} "
         f"({s['completion_tokens'] / s['requests']:.1f} per request, from {s['token_source']})"),
        ("wall time", f"{s['wall_s']:.2f} s -> {fmt(s['throughput_tok_s'])} tok/s throughput"),
        ("decode span", f"{s['decode_span_s']:.2f} s -> "
         f"{fmt(s['aggregate_decode_tok_s'])} tok/s aggregate decode"),
        ("per-stream decode", f"{fmt(s['per_stream_decode_tok_s_median'])} tok/s median "
         f"(min {fmt(s['per_stream_decode_tok_s_min'])}, "
         f"max {fmt(s['per_stream_decode_tok_s_max'])})"),
        ("TTFT", f"{s['ttft_s_median']:.3f} s median, {s['ttft_s_max']:.3f} s max"),
    ]
    for key, value in rows:
        print(f"  {key:<18} {value}", file=out)


# ---- compare ---------------------------------------------------------------------------------

def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log_tail(path, lines=20):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def wait_healthy(proc, url, log_path, timeout=HEALTH_TIMEOUT_S):
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"the server exited with status {proc.returncode} before "
                             f"{url}/health answered 200; log tail ({log_path}):\n{log_tail(log_path)}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=5) as resp:
                if resp.status == 200:
                    return
                last = f"HTTP {resp.status}"
        except urllib.error.HTTPError as e:
            last = f"HTTP {e.code}"
        except (urllib.error.URLError, OSError) as e:
            last = str(getattr(e, "reason", e))
        time.sleep(0.25)
    raise BenchError(f"{url}/health did not answer 200 within {timeout:.0f} s (last: {last}); "
                     f"log tail ({log_path}):\n{log_tail(log_path)}")


def stop(proc):
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_server(name, argv, port, log_dir, args, clients):
    url = f"http://127.0.0.1:{port}"
    log_path = os.path.join(log_dir, f"{name}-{clients}.log")
    print(f"[{name} x{clients}] {shlex.join(argv)}", file=sys.stderr, flush=True)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        t0 = time.monotonic()
        wait_healthy(proc, url, log_path)
        print(f"[{name} x{clients}] healthy after {time.monotonic() - t0:.1f} s; warm-up",
              file=sys.stderr, flush=True)
        warm = make_client(url, None, args.timeout)
        try:
            stream_one(warm, first_model(warm, url), "Say hello.", min(args.tokens, 4),
                       not args.no_ignore_eos)
        except BenchError:
            raise
        except Exception as e:  # noqa: BLE001
            raise BenchError(f"the warm-up request to {name} failed: {describe_error(e)}") from e
        summary = measure(url, clients, args.tokens, args.prompt_words, args.requests_per_client,
                          None, name, not args.no_ignore_eos, args.timeout)
        print_table(summary, sys.stderr)
        return summary
    except BenchError as e:
        raise BenchError(f"{name} with {clients} client(s): {e}") from e
    finally:
        stop(proc)


def compare(args):
    counts = sorted({int(c) for c in args.clients_list.split(",") if c.strip()})
    if not counts or counts[0] < 1:
        raise BenchError(f"--clients-list must list positive integers, got {args.clients_list!r}")
    for path in (args.glimpse, args.llama_server, args.glimpse_model, args.llama_model):
        if not os.path.exists(path):
            raise BenchError(f"{path}: no such file")
    log_dir = tempfile.mkdtemp(prefix="bench_clients-")
    print(f"server logs: {log_dir}", file=sys.stderr)
    results = []
    for n in counts:
        port = free_port()
        glimpse = [args.glimpse, "serve", "-m", args.glimpse_model, "--threads", str(args.threads),
                   "--parallel", str(n), "--port", str(port), "--host", "127.0.0.1"]
        results.append(run_server("glimpse", glimpse + shlex.split(args.glimpse_args), port,
                                  log_dir, args, n))
        port = free_port()
        llama = [args.llama_server, "-m", args.llama_model, "-t", str(args.threads),
                 "-np", str(n), "-c", str(n * SLOT_CTX), "--port", str(port), "--host", "127.0.0.1"]
        results.append(run_server("llama-server", llama + shlex.split(args.llama_args), port,
                                  log_dir, args, n))
    return results


def markdown(results):
    base = {}
    for s in results:
        base.setdefault(s["label"], s)  # results come in increasing client counts
    fewest = min(s["clients"] for s in results)
    lines = [
        f"| server | clients | tokens | throughput tok/s | aggregate decode tok/s "
        f"| per-stream tok/s | median TTFT s | max TTFT s "
        f"| throughput ÷ {fewest} client(s) | aggregate decode ÷ {fewest} client(s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def ratio(s, key):
        a, b = s[key], base[s["label"]][key]
        return f"{a / b:.2f}" if a and b else "-"

    for label in base:
        for s in (s for s in results if s["label"] == label):
            lines.append(
                f"| {label} | {s['clients']} | {s['completion_tokens']} "
                f"| {fmt(s['throughput_tok_s'])} | {fmt(s['aggregate_decode_tok_s'])} "
                f"| {fmt(s['per_stream_decode_tok_s_median'])} | {s['ttft_s_median']:.3f} "
                f"| {s['ttft_s_max']:.3f} | {ratio(s, 'throughput_tok_s')} "
                f"| {ratio(s, 'aggregate_decode_tok_s')} |")
    return "\n".join(lines)


# ---- command line ----------------------------------------------------------------------------

def common_options(p):
    p.add_argument("--tokens", type=int, default=64, help="max_tokens per request (default 64)")
    p.add_argument("--prompt-words", type=int, default=32,
                   help="filler words appended to each prompt (default 32)")
    p.add_argument("--requests-per-client", type=int, default=1,
                   help="requests each client sends one after the other (default 1)")
    p.add_argument("--no-ignore-eos", action="store_true",
                   help="do not send ignore_eos (llama-server may then stop early)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per request (default 600)")
    p.add_argument("--json", action="store_true",
                   help="print JSON on stdout (the human table goes to stderr)")


def noise_png(side, seed):
    """A `side`x`side` RGB PNG of pseudo-random pixels (a new image for every seed, so no
    cache on the server has seen it)."""
    rng = random.Random(seed)
    raw = b"".join(b"\x00" + bytes(rng.getrandbits(8) for _ in range(side * 3))
                   for _ in range(side))

    def chunk(kind, body):
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def image_turn(client, model, png, max_tokens, phases):
    """Streams an image question, noting in `phases` (time, phase) as the stream reports
    progress: "vision" while images are encoded, "prompt" while the prompt is read, then
    "answer" from the first token on."""
    data = base64.b64encode(png).decode("ascii")
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}},
            {"type": "text", "text": "Describe this image in detail."},
        ]}],
        stream=True,
        temperature=0,
        max_tokens=max_tokens,
        extra_body={"return_progress": True, "ignore_eos": True},
    )
    for chunk in stream:
        progress = (chunk.model_extra or {}).get("prompt_progress")
        now = time.perf_counter()
        if progress:
            encoding = progress.get("images_encoded", 0) < progress.get("images", 0)
            phases.append((now, "vision" if encoding else "prompt"))
        elif any(c.delta and c.delta.content for c in chunk.choices):
            phases.append((now, "answer"))


OPENERS = ["Quick question", "Hello", "Please tell me", "Tell me", "Hey", "Say",
           "Remind me", "Friend", "Teacher", "Now", "Today", "Briefly"]


def during_image(args):
    """A short text request sent at each offset into a 448x448 image turn: its TTFT, and
    what the image turn was doing when it was sent."""
    url = args.url.rstrip("/")
    client = make_client(url, args.api_key, args.timeout)
    model = first_model(client, url)
    offsets = [float(v) for v in args.offsets.split(",") if v.strip()]
    # The first round is a warm-up (a fresh server's first requests, and the first use of
    # its second slot, are slower) and is not reported.
    rows = []
    for n, offset in enumerate([0.5] + offsets):
        png = noise_png(args.side, f"{os.getpid()}-{time.time_ns()}-{n}")
        phases = []
        errors = []

        def run_image():
            try:
                image_turn(client, model, png, args.image_tokens, phases)
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(describe_error(e))

        image = threading.Thread(target=run_image, daemon=True)
        started = time.perf_counter()
        image.start()
        time.sleep(offset)
        sent = time.perf_counter()
        phase = next((p for t, p in reversed(phases) if t <= sent), "queued")
        try:
            # A short everyday question; its first word changes so no cache holds it.
            question = f"{OPENERS[n % len(OPENERS)]}, what is the capital of France?"
            text = stream_one(client, model, question, args.text_tokens, True, logprobs=True)
        except Exception as e:  # noqa: BLE001
            raise BenchError(f"the text request failed: {describe_error(e)}") from e
        image.join()
        if errors:
            raise BenchError(f"the image request failed: {errors[0]}")
        ttft = text["first"] - text["sent"] if text["first"] else float("nan")
        first_answer = next((t for t, p in phases if p == "answer"), None)
        if n == 0:
            continue
        rows.append({
            "offset_s": offset,
            "text_prompt_tokens": text.get("prompt_tokens"),
            "image_phase_when_sent": phase,
            "text_ttft_s": ttft,
            "image_turn_ttft_s": (first_answer - started) if first_answer else None,
        })
        print(f"offset {offset:5.1f} s  image turn in {phase:7s}  text TTFT {ttft:6.3f} s"
              f"  ({text.get('prompt_tokens')} prompt tokens)", file=sys.stderr)
    return {"url": url, "model": model, "image_side": args.side, "rows": rows,
            "max_text_ttft_s": max(r["text_ttft_s"] for r in rows)}


def main(argv):
    if argv[:1] == ["during-image"]:
        p = argparse.ArgumentParser(
            prog="bench_clients.py during-image",
            description="TTFT of a short text request sent while another client's image turn "
                        "runs (the server needs --parallel 2 or more)")
        p.add_argument("--url", required=True, help="server root, e.g. http://127.0.0.1:8080")
        p.add_argument("--side", type=int, default=448,
                       help="side of the image turn's image (a new noise image each time)")
        p.add_argument("--offsets", default="0.5,2,4,6,8",
                       help="seconds after the image request to send the text one")
        p.add_argument("--image-tokens", type=int, default=16, help="max_tokens of the image turn")
        p.add_argument("--text-tokens", type=int, default=8, help="max_tokens of the text request")
        p.add_argument("--api-key", help="bearer key (default: none)")
        p.add_argument("--timeout", type=float, default=600.0)
        args = p.parse_args(argv[1:])
        result = during_image(args)
        print(json.dumps(result, indent=2))
        return
    if argv[:1] == ["compare"]:
        p = argparse.ArgumentParser(prog="bench_clients.py compare",
                                    description="glimpse vs llama-server with 1..N clients")
        p.add_argument("--glimpse", required=True, help="glimpse binary")
        p.add_argument("--glimpse-model", required=True, help="model for glimpse serve -m")
        p.add_argument("--llama-server", required=True, help="llama-server binary")
        p.add_argument("--llama-model", required=True, help="text GGUF for llama-server -m")
        p.add_argument("--threads", type=int, required=True, help="compute threads of both servers")
        p.add_argument("--clients-list", default="1,4", help="client counts (default 1,4)")
        p.add_argument("--glimpse-args", default="", help="extra glimpse serve arguments")
        p.add_argument("--llama-args", default="", help="extra llama-server arguments")
        common_options(p)
        args = p.parse_args(argv[1:])
        results = compare(args)
        if args.json:
            print(json.dumps(results, indent=2))
        else:
            print(markdown(results))
        return
    p = argparse.ArgumentParser(prog="bench_clients.py",
                                description=__doc__.split("\n\n")[0],
                                epilog="`bench_clients.py compare --help` for the wrapper mode.")
    p.add_argument("--url", required=True, help="server root, e.g. http://127.0.0.1:8080")
    p.add_argument("--clients", type=int, required=True, help="concurrent clients")
    p.add_argument("--api-key", help="bearer key (default: none)")
    p.add_argument("--label", help="name shown in the output (default: the URL)")
    common_options(p)
    args = p.parse_args(argv)
    if args.clients < 1 or args.tokens < 1 or args.requests_per_client < 1 or args.prompt_words < 0:
        p.error("--clients, --tokens and --requests-per-client must be >= 1, --prompt-words >= 0")
    summary = measure(args.url.rstrip("/"), args.clients, args.tokens, args.prompt_words,
                      args.requests_per_client, args.api_key, args.label,
                      not args.no_ignore_eos, args.timeout)
    print_table(summary, sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except BenchError as e:
        sys.exit(f"bench_clients.py: {e}")
    except KeyboardInterrupt:
        sys.exit(130)
