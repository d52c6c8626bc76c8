#!/usr/bin/env python3
"""Helper of scripts/bench_vs_llamacpp.sh (Python stdlib only).

    bench_vs_llamacpp.py fingerprint LLAMA_CPP_DIR     content hash of a llama.cpp source tree
    bench_vs_llamacpp.py png OUT.png                   deterministic 448x448 RGB test image
    bench_vs_llamacpp.py gguf-bytes FILE.gguf          text-weight bytes read per decoded token
    bench_vs_llamacpp.py class [BENCH_CLASS]           this CPU's class and mode, e.g. "avx512 native"
    bench_vs_llamacpp.py run --config RUN.json         runs both tools, writes results + the class's section
    bench_vs_llamacpp.py report RESULTS.json OUT.md    rewrites the results' class section from saved results
    bench_vs_llamacpp.py migrate OUT.md                converts an old one-report BENCHMARKS.md to sections

`run` measures, with the same thread count for both tools and for each profile (f32, q8_0, q4_K):
  llama.cpp  llama-bench -p 512 -n 128 -o json         prefill / decode tok/s (empty context)
             llama-bench -p 0 -n 128 -d 512 -o json    decode tok/s after 512 tokens of context
             llama-mtmd-cli (one 448x448 image)        vision encode ms ("image slice encoded in")
             llama-server -c 8192 -np 1 over HTTP      load ms (spawn -> /health 200), TTFT of a
                                                       first image turn and of a follow-up text turn
                                                       (streamed, cache_prompt), peak RSS (VmHWM)
  glimpse    glimpse bench ... --json                  the same fields, one JSON object
and the machine's streaming read bandwidth (scripts/membw.c), from which the decode bandwidth
utilisation = bytes of weights read per token x decode tok/s / bandwidth.

BENCHMARKS.md holds one section per CPU class (CLASSES; from lscpu's flags and vendor), between
`<!-- class:KEY:begin -->` and `<!-- class:KEY:end -->`, under a shared header (rewritten every
time) and above the hand-written notes (kept). A run or `report` rewrites its own class's section
and keeps the others byte for byte. The class `avx2` is measured natively on a CPU without
AVX-512, or "capped" on one with it (BENCH_CLASS=avx2: glimpse with GLIMPSE_SIMD=avx2, llama.cpp
built without AVX-512 by the shell script). A file without class markers (the one-report layout
before the classes) becomes the section of the class its Setup's CPU line names.
"""

import argparse
import base64
import datetime
import hashlib
import json
import os
import platform
import re
import socket
import statistics
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path

NOTES_BEGIN = "<!-- notes:begin (hand-written; kept by scripts/bench_vs_llamacpp.sh between runs) -->"
NOTES_END = "<!-- notes:end -->"
DEFAULT_NOTES = "_No notes yet._"

PROFILES = {
    # profile: (llama.cpp text GGUF, llama.cpp quant label, glimpse GGUF)
    "f32": ("llamacpp-text-f32.gguf", "F32", "glimpse-f32.gguf"),
    "q8_0": ("llamacpp-text-q8_0.gguf", "Q8_0", "glimpse-q8_0.gguf"),
    "q4_K": ("llamacpp-text-q4_k_m.gguf", "Q4_K_M", "glimpse-q4_k.gguf"),
}
MMPROJ = "llamacpp-mmproj-f32.gguf"
IMAGE_PROMPT = "Describe this image."
FOLLOWUP_PROMPT = "What colors are in the top left corner?"

# CPU class: section title, in the order of BENCHMARKS.md's sections
CLASSES = {
    "amx": "Intel Xeon with AMX",
    "avx512": "Intel Xeon with AVX-512, no AMX",
    "zen4": "AMD Zen 4 class (AVX-512)",
    "zen5": "AMD Zen 5 class (AVX-512, full-width)",
    "avx2": "AVX2 (no AVX-512)",
}
# BENCH_MODEL: (model name, text layers of the full model). A model other than the 2B, or fewer
# layers, gets its own section: key CLASS-MODEL[-lLAYERS].
MODELS = {"2b": ("Qwen3-VL-2B-Instruct", 28), "4b": ("Qwen3-VL-4B-Instruct", 36),
          "8b": ("Qwen3-VL-8B-Instruct", 36), "30b-a3b": ("Qwen3-VL-30B-A3B-Instruct", 48)}
AVX2_CAP_ENV = {"GLIMPSE_SIMD": "avx2"}  # glimpse's side of the class avx2 on a CPU with AVX-512
CLASS_RE = re.compile(r"<!-- class:([\w-]+):begin -->.*?<!-- class:\1:end -->", re.S)
CPU_FLAGS = ("avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16",
             "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16")


def log(*a):
    print("[bench]", *a, file=sys.stderr, flush=True)


# --- fingerprint -----------------------------------------------------------------------------

FP_PATHS = ["CMakeLists.txt", "convert_hf_to_gguf.py", "src", "include", "ggml/src", "ggml/include",
            "common", "conversion", "gguf-py/gguf", "tools/mtmd", "tools/server", "tools/llama-bench",
            "tools/quantize"]
FP_EXT = (".c", ".cc", ".cpp", ".h", ".hpp", ".py", ".txt", ".cmake", ".comp", ".metal", ".cu", ".cuh")


def fingerprint(root):
    """sha256 over (relative path, sha256 of content) of llama.cpp's code files: equal for the
    same source whether it comes from a git checkout or from the llama-cpp-python sdist."""
    root = Path(root)
    h = hashlib.sha256()
    files = []
    for p in FP_PATHS:
        q = root / p
        if q.is_file():
            files.append(q)
        elif q.is_dir():
            for f in q.rglob("*"):
                rel = f.relative_to(root).parts
                if f.is_file() and f.name.endswith(FP_EXT) and "__pycache__" not in rel \
                        and not any(x.endswith(".egg-info") for x in rel):
                    files.append(f)
    for f in sorted(files, key=lambda f: f.relative_to(root).as_posix()):
        h.update(f.relative_to(root).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


# --- image -------------------------------------------------------------------------------------

def write_png(path, w=448, h=448):
    """Deterministic RGB test picture: gradients, a checkerboard and some texture."""
    rows = bytearray()
    for y in range(h):
        rows.append(0)
        for x in range(w):
            r = (x * 255) // (w - 1)
            g = (y * 255) // (h - 1)
            b = (((x // 32 + y // 32) % 2) * 200 + (x * y) % 55) & 255
            rows += bytes((r, g, b))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) \
        + chunk(b"IDAT", zlib.compress(bytes(rows), 9)) + chunk(b"IEND", b"")
    Path(path).write_bytes(png)


# --- GGUF tensor sizes ---------------------------------------------------------------------------

# ggml type id -> (block elements, block bytes)
GGML_TYPES = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34), 9: (32, 36),
    10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210), 15: (256, 292),
    16: (256, 66), 17: (256, 74), 18: (256, 98), 19: (256, 50), 20: (32, 18), 21: (256, 110),
    22: (256, 82), 23: (256, 136), 24: (1, 1), 25: (1, 2), 26: (1, 4), 27: (1, 8), 28: (1, 8),
    29: (256, 56), 30: (1, 2), 34: (256, 54), 35: (256, 66), 39: (32, 17),
}
GGML_TYPE_NAMES = {0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1",
                   10: "Q2_K", 11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 20: "IQ4_NL",
                   23: "IQ4_XS", 30: "BF16", 39: "MXFP4"}


def read_gguf_tensors(path):
    """[(name, type_id, n_elements, nbytes)] from a GGUF file's header (v2/v3)."""
    return read_gguf_header(path)[0]


def read_gguf_header(path):
    """(read_gguf_tensors' list, {key: value} of the integer metadata keys ending in
    `expert_count` / `expert_used_count`) of a GGUF file."""
    with open(path, "rb") as f:
        def rd(fmt):
            return struct.unpack("<" + fmt, f.read(struct.calcsize("<" + fmt)))[0]

        def rstr():
            return f.read(rd("Q")).decode("utf-8", "replace")

        scalar = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}

        def rval(t):
            if t in scalar:
                return rd(scalar[t])
            if t == 8:
                return rstr()
            if t == 9:
                et, n = rd("I"), rd("Q")
                if et in scalar:
                    sz = struct.calcsize(scalar[et])
                    f.seek(sz * n, 1)
                    return None
                return [rval(et) for _ in range(n)]
            raise ValueError(f"{path}: unknown GGUF value type {t}")

        if f.read(4) != b"GGUF":
            raise ValueError(f"{path}: not a GGUF file")
        version = rd("I")
        if version < 2:
            raise ValueError(f"{path}: GGUF v{version} not supported")
        n_tensors, n_kv = rd("Q"), rd("Q")
        alignment = 32
        experts = {}
        for _ in range(n_kv):
            key = rstr()
            v = rval(rd("I"))
            if key == "general.alignment":
                alignment = v
            if key.endswith(("expert_count", "expert_used_count")) and isinstance(v, int):
                experts[key.rsplit(".", 1)[-1]] = v
        infos = []
        for _ in range(n_tensors):
            name = rstr()
            nd = rd("I")
            dims = [rd("Q") for _ in range(nd)]
            t = rd("I")
            off = rd("Q")
            n = 1
            for d in dims:
                n *= d
            infos.append((name, t, n, off))
        data_start = (f.tell() + alignment - 1) // alignment * alignment
    file_size = os.path.getsize(path)
    by_off = sorted(infos, key=lambda x: x[3])
    nxt = {x[0]: (by_off[i + 1][3] if i + 1 < len(by_off) else file_size - data_start) for i, x in enumerate(by_off)}
    out = []
    for name, t, n, off in infos:
        if t in GGML_TYPES:
            be, bb = GGML_TYPES[t]
            nbytes = n // be * bb
        else:
            nbytes = nxt[name] - off
        out.append((name, t, n, nbytes))
    return out, experts


def decode_bytes_per_token(path):
    """Weight bytes one decoded token reads: every text-model tensor except the token embedding
    (only one row of it is read), plus the output matrix: `output.weight` if present, else the
    tied token_embd; of a mixture of experts' expert tensors (`*_exps`), the share of the experts
    a token uses (expert_used_count / expert_count). Vision tensors (v.*, mm.*) are not counted."""
    ts, experts = read_gguf_header(path)
    text = [t for t in ts if not (t[0].startswith("v.") or t[0].startswith("mm."))]
    names = {t[0] for t in text}
    share = 1.0
    if experts.get("expert_count") and experts.get("expert_used_count"):
        share = experts["expert_used_count"] / experts["expert_count"]

    def read(t):
        return t[3] * share if "_exps." in t[0] else t[3]

    per_tok = sum(read(t) for t in text if t[0] != "token_embd.weight")
    tied = "output.weight" not in names
    if tied:
        per_tok += sum(t[3] for t in text if t[0] == "token_embd.weight")
    types = {}
    for t in text:
        k = GGML_TYPE_NAMES.get(t[1], str(t[1]))
        types[k] = types.get(k, 0) + t[3]
    return {"file": str(path), "file_bytes": os.path.getsize(path), "text_weight_bytes": sum(t[3] for t in text),
            "bytes_per_token": per_tok, "tied_output": tied, "experts": experts, "text_bytes_by_type": types,
            "n_tensors": len(ts), "n_vision_tensors": len(ts) - len(text)}


# --- process helpers ------------------------------------------------------------------------------

def run_cmd(cmd, logfile, timeout=3600, env_extra=None):
    """Runs cmd (stderr to logfile; env_extra added to this environment), returns its stdout."""
    log("$", *(f"{k}={v}" for k, v in (env_extra or {}).items()), " ".join(map(str, cmd)))
    env = dict(os.environ, **env_extra) if env_extra else None
    with open(logfile, "w") as lf:
        p = subprocess.run(list(map(str, cmd)), stdout=subprocess.PIPE, stderr=lf, timeout=timeout,
                           env=env, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{cmd[0]} exited with {p.returncode}; see {logfile}")
    return p.stdout


def vm_status(pid, key):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- llama.cpp -----------------------------------------------------------------------------------

def llama_bench(cfg, model, outdir, tag):
    cmd = [Path(cfg["llama_bin"]) / "llama-bench", "-m", model, "-p", cfg["prompt_tokens"], "-n", cfg["gen_tokens"],
           "-t", cfg["threads"], "-r", cfg["reps"], "-o", "json"]
    out = run_cmd(cmd, outdir / f"llama-bench-{tag}.log")
    (outdir / f"llama-bench-{tag}.json").write_text(out)
    res = {}
    for e in json.loads(out):
        if e.get("n_prompt", 0) > 0 and e.get("n_gen", 0) == 0:
            res["prefill_tokens"], res["prefill_tok_s"], res["prefill_tok_s_sd"] = e["n_prompt"], e["avg_ts"], e["stddev_ts"]
        elif e.get("n_gen", 0) > 0 and e.get("n_prompt", 0) == 0:
            res["decode_tokens"], res["decode_tok_s"], res["decode_tok_s_sd"] = e["n_gen"], e["avg_ts"], e["stddev_ts"]
        res.setdefault("build_commit", e.get("build_commit"))
        res.setdefault("build_number", e.get("build_number"))
        res.setdefault("cpu_info", e.get("cpu_info"))
    # Decode after a prompt as long as the prefill's, as glimpse's bench measures it too.
    cmd = [Path(cfg["llama_bin"]) / "llama-bench", "-m", model, "-p", "0", "-n", cfg["gen_tokens"],
           "-d", cfg["prompt_tokens"], "-t", cfg["threads"], "-r", cfg["reps"], "-o", "json"]
    out = run_cmd(cmd, outdir / f"llama-bench-depth-{tag}.log")
    (outdir / f"llama-bench-depth-{tag}.json").write_text(out)
    for e in json.loads(out):
        if e.get("n_gen", 0) > 0:
            res["decode_after_prompt_tok_s"] = e["avg_ts"]
            res["decode_after_prompt_tok_s_sd"] = e["stddev_ts"]
    return res


def llama_mtmd_vision(cfg, model, outdir, tag):
    """Vision encode ms from llama-mtmd-cli's "image slice encoded in N ms" (median of reps)."""
    enc, dec, ntok = [], [], None
    for r in range(int(cfg["reps"])):
        logf = outdir / f"llama-mtmd-cli-{tag}-{r}.log"
        cmd = [Path(cfg["llama_bin"]) / "llama-mtmd-cli", "-m", model, "--mmproj", Path(cfg["gguf_dir"]) / MMPROJ,
               "--image", cfg["image"], "-p", IMAGE_PROMPT, "-n", "1", "-t", cfg["threads"], "-c", "8192",
               "--temp", "0"]
        run_cmd(cmd, logf)
        text = logf.read_text(errors="replace")
        e = [int(x) for x in re.findall(r"(?:slice encoded|batch encoding done) in (\d+) ms", text)]
        d = [int(x) for x in re.findall(r"decoded \(batch \d+/\d+\) in (\d+) ms", text)]
        if not e:
            raise RuntimeError(f"no vision-encoder timing line in {logf}")
        enc.append(sum(e))
        if d:
            dec.append(sum(d))
        m = re.search(r"n_tokens_batch = (\d+)", text)
        if m:
            ntok = int(m.group(1))
    return {"vision_ms": statistics.median(enc), "vision_ms_all": enc,
            "image_prefill_ms": statistics.median(dec) if dec else None, "image_tokens": ntok}


def http_json(url, body=None, timeout=600):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.read()


def stream_chat(base, messages, max_tokens):
    """One streamed chat completion. Returns (ttft_ms, total_ms, text, timings)."""
    body = {"messages": messages, "stream": True, "max_tokens": max_tokens, "temperature": 0, "seed": 0,
            "cache_prompt": True}
    req = urllib.request.Request(base + "/v1/chat/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    t0 = time.perf_counter()
    ttft, text, timings = None, [], None
    with urllib.request.urlopen(req, timeout=1800) as r:
        for raw in r:
            line = raw.decode("utf-8", "replace").strip()
            if not line.startswith("data:"):
                continue
            payload = line[5:].strip()
            if payload == "[DONE]":
                break
            ev = json.loads(payload)
            if "timings" in ev:
                timings = ev["timings"]
            for ch in ev.get("choices", []):
                d = ch.get("delta") or {}
                piece = (d.get("content") or "") + (d.get("reasoning_content") or "")
                if piece:
                    if ttft is None:
                        ttft = (time.perf_counter() - t0) * 1000
                    text.append(piece)
    total = (time.perf_counter() - t0) * 1000
    return ttft, total, "".join(text), timings


def llama_server_once(cfg, model, outdir, tag, rep):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    logf = outdir / f"llama-server-{tag}-{rep}.log"
    cmd = [Path(cfg["llama_bin"]) / "llama-server", "-m", model, "--mmproj", Path(cfg["gguf_dir"]) / MMPROJ,
           "-t", cfg["threads"], "-c", "8192", "-np", "1", "--host", "127.0.0.1", "--port", port]
    log("$", " ".join(map(str, cmd)))
    lf = open(logf, "w")
    t0 = time.perf_counter()
    proc = subprocess.Popen(list(map(str, cmd)), stdout=lf, stderr=subprocess.STDOUT)
    try:
        load_ms = None
        while time.perf_counter() - t0 < 900:
            if proc.poll() is not None:
                raise RuntimeError(f"llama-server exited with {proc.returncode}; see {logf}")
            try:
                st, _ = http_json(base + "/health", timeout=5)
                if st == 200:
                    load_ms = (time.perf_counter() - t0) * 1000
                    break
            except (urllib.error.URLError, ConnectionError, socket.timeout):
                pass
            time.sleep(0.02)
        if load_ms is None:
            raise RuntimeError(f"llama-server did not become healthy; see {logf}")
        idle_rss = vm_status(proc.pid, "VmRSS")
        img = base64.b64encode(Path(cfg["image"]).read_bytes()).decode()
        user1 = {"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64," + img}},
            {"type": "text", "text": IMAGE_PROMPT}]}
        ttft1, total1, answer, tim1 = stream_chat(base, [user1], cfg["answer_tokens"])
        peak_rss = vm_status(proc.pid, "VmHWM")
        msgs2 = [user1, {"role": "assistant", "content": answer}, {"role": "user", "content": FOLLOWUP_PROMPT}]
        ttft2, total2, _, tim2 = stream_chat(base, msgs2, cfg["answer_tokens"])
        return {"load_ms": load_ms, "idle_rss_bytes": idle_rss, "peak_rss_bytes": peak_rss,
                "ttft_image_ms": ttft1, "ttft_followup_ms": ttft2, "image_turn_timings": tim1,
                "followup_timings": tim2, "answer": answer}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        lf.close()


def median_of(runs, key):
    vals = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def llama_server(cfg, model, outdir, tag):
    runs = [llama_server_once(cfg, model, outdir, tag, r) for r in range(int(cfg["reps"]))]
    res = {k: median_of(runs, k) for k in ("load_ms", "idle_rss_bytes", "ttft_image_ms", "ttft_followup_ms")}
    res["peak_rss_bytes"] = max(r["peak_rss_bytes"] for r in runs)
    res["image_turn_prompt_tokens"] = (runs[0].get("image_turn_timings") or {}).get("prompt_n")
    res["followup_cached_tokens"] = (runs[0].get("followup_timings") or {}).get("cache_n")
    res["server_runs"] = runs
    return res


def run_llama(cfg, prof, outdir):
    text_gguf, _, _ = PROFILES[prof]
    model = Path(cfg["gguf_dir"]) / text_gguf
    res = {"model": str(model), "file_bytes": os.path.getsize(model),
           "mmproj_bytes": os.path.getsize(Path(cfg["gguf_dir"]) / MMPROJ)}
    res.update(llama_bench(cfg, model, outdir, prof))
    res.update(llama_mtmd_vision(cfg, model, outdir, prof))
    res.update(llama_server(cfg, model, outdir, prof))
    res["weights"] = decode_bytes_per_token(model)
    return res


# --- glimpse -------------------------------------------------------------------------------------

def run_glimpse(cfg, prof, outdir):
    _, _, gfile = PROFILES[prof]
    model = Path(cfg["gguf_dir"]) / gfile
    cmd = [cfg["glimpse"], "bench", "-m", model, "--image", cfg["image"], "--prompt-tokens", cfg["prompt_tokens"],
           "--gen-tokens", cfg["gen_tokens"], "--threads", cfg["threads"], "--json"]
    if int(cfg["reps"]) > 1:
        cmd += ["--repetitions", cfg["reps"]]
    out = run_cmd(cmd, outdir / f"glimpse-bench-{prof}.log", env_extra=AVX2_CAP_ENV if cfg.get("capped") else None)
    objs = [l for l in out.splitlines() if l.strip()]
    try:
        res = json.loads(out)
    except json.JSONDecodeError:
        raise RuntimeError(f"glimpse bench did not print one JSON object on stdout: {objs[:3]}")
    (outdir / f"glimpse-bench-{prof}.json").write_text(json.dumps(res, indent=2))
    # The report's names: decode_tok_s from an empty context (llama-bench's tg), and after the prompt.
    res["decode_after_prompt_tok_s"] = res.get("decode_tok_s")
    res["decode_tok_s"] = res.get("decode_empty_tok_s")
    res["weights"] = decode_bytes_per_token(model)
    return res


# --- environment -----------------------------------------------------------------------------------

def cpu_info():
    """lscpu's model name, vendor, L3, hypervisor, CPU_FLAGS (present or not) and core counts."""
    info = {}
    try:
        lscpu = subprocess.run(["lscpu"], stdout=subprocess.PIPE, text=True).stdout
        for line in lscpu.splitlines():
            k, _, v = line.partition(":")
            v = v.strip()
            if k == "Model name":
                info["cpu"] = v
            elif k == "Flags":
                flags = set(v.split())
                info["flags"] = {f: (f in flags) for f in CPU_FLAGS}
            elif k in ("L3 cache", "Hypervisor vendor", "Vendor ID", "CPU family"):
                info[k.lower().replace(" ", "_")] = v
        cores = subprocess.run(["lscpu", "-p=core,socket"], stdout=subprocess.PIPE, text=True).stdout
        info["physical_cores"] = len({l for l in cores.splitlines() if l and not l.startswith("#")})
        info["logical_cpus"] = os.cpu_count()
    except OSError:
        pass
    return info


def machine_info(threads, membw):
    info = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "kernel": platform.release()}
    info.update(cpu_info())
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                info["ram_bytes"] = int(line.split()[1]) * 1024
    except OSError:
        pass
    info["threads"] = threads
    info["membw"] = membw
    return info


def cpu_class(machine):
    """The CLASSES key of a cpu_info() / machine_info() (also an old results.json's "machine"):
    AMX, else AVX-512 (AMD: zen4; from family 26, whose 512-bit units are full width, zen5), else
    AVX2; None without AVX2."""
    flags = machine.get("flags") or {}
    if flags.get("amx_int8"):
        return "amx"
    if flags.get("avx512f"):
        if machine.get("vendor_id") != "AuthenticAMD":
            return "avx512"
        family = str(machine.get("cpu_family") or "0")
        return "zen5" if family.isdigit() and int(family) >= 26 else "zen4"
    return "avx2" if flags.get("avx2") else None


def choose_class(requested, machine):
    """(class, "native" | "capped") for BENCH_CLASS=requested ("" or "auto": the CPU's own class);
    only avx2 can be asked for on a CPU of another class (capped)."""
    own = cpu_class(machine)
    if own is None:
        raise SystemExit(f"bench_vs_llamacpp: no class for this CPU ({machine.get('cpu')}): it has no AVX2")
    if requested in ("", "auto", own):
        return own, "native"
    if requested == "avx2":
        return "avx2", "capped"
    raise SystemExit(f"bench_vs_llamacpp: BENCH_CLASS={requested}: this CPU is class {own}; "
                     "only BENCH_CLASS=avx2 (the AVX2 path on a CPU with AVX-512) can be asked for")


# --- report ---------------------------------------------------------------------------------------

def fmt(v, nd=1):
    if v is None:
        return "—"
    if isinstance(v, float) or isinstance(v, int):
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.{nd}f}"
    return str(v)


def ratio(l, g, higher_better):
    if l is None or g is None or l == 0 or g == 0:
        return "—"
    r = g / l if higher_better else l / g
    return f"{r:.2f}×"


def table(lr, gr):
    rows = [
        ("vision encode, 448×448 (ms)", "vision_ms", False, 0, 1),
        ("prefill, 512 tokens (tok/s)", "prefill_tok_s", True, 1, 1),
        ("decode, 128 tokens from an empty context (tok/s)", "decode_tok_s", True, 1, 1),
        ("decode, 128 tokens after the 512-token prompt (tok/s)", "decode_after_prompt_tok_s", True, 1, 1),
        ("TTFT, first image turn (ms)", "ttft_image_ms", False, 0, 1),
        ("TTFT, follow-up turn (ms)", "ttft_followup_ms", False, 0, 1),
        ("peak RSS (GB)", "peak_rss_bytes", False, 2, 1e-9),
        ("load time (ms)", "load_ms", False, 0, 1),
    ]
    out = ["| metric | llama.cpp | glimpse | ratio |", "|---|---:|---:|---:|"]
    for label, key, hb, nd, scale in rows:
        lv = lr.get(key) if lr else None
        gv = gr.get(key) if gr else None
        lv = None if lv is None else lv * scale
        gv = None if gv is None else gv * scale
        out.append(f"| {label} | {fmt(lv, nd)} | {fmt(gv, nd)} | {ratio(lv, gv, hb)} |")
    return "\n".join(out)


def bw_line(name, r, bw):
    if not r or "weights" not in r or r.get("decode_tok_s") is None:
        return f"- {name}: —"
    b = r["weights"]["bytes_per_token"]
    used = b * r["decode_tok_s"]
    s = f"- {name}: {b / 1e9:.3f} GB of weights per token × {r['decode_tok_s']:.1f} tok/s = {used / 1e9:.1f} GB/s"
    if bw:
        s += f" = **{100 * used / bw:.0f} %** of the measured {bw / 1e9:.1f} GB/s"
        s += f" (ceiling at this bandwidth: {bw / b:.1f} tok/s)"
    return s


def read_text(path):
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""


def read_notes(text):
    i, j = text.find(NOTES_BEGIN), text.find(NOTES_END)
    if i < 0 or j < i:
        return DEFAULT_NOTES
    return text[i + len(NOTES_BEGIN):j].strip("\n") or DEFAULT_NOTES


def class_section(key, lines, title=None):
    """A class's section: its markers around its title and lines (blank lines at the ends dropped)."""
    body = "\n".join(lines).strip("\n")
    title = title or CLASSES.get(key, key)
    return f"<!-- class:{key}:begin -->\n## {title}\n\n{body}\n\n<!-- class:{key}:end -->"


def model_of(results):
    """(BENCH_MODEL, layers kept or None) of a run's results (older results: the whole 2B)."""
    return results.get("model") or "2b", results.get("layers")


def section_key_and_title(cls, results):
    model, layers = model_of(results)
    if model == "2b" and not layers:
        return cls, CLASSES.get(cls, cls)
    name, total = MODELS[model]
    kept = f", first {layers} of {total} text layers" if layers else ""
    return (f"{cls}-{model}" + (f"-l{layers}" if layers else ""),
            f"{CLASSES.get(cls, cls)} — {name} (synthetic{kept})")


def class_sections(text):
    """{class: its section, markers included, byte for byte} of a BENCHMARKS.md, in file order;
    a file without class markers in the old one-report layout gives that report's (migrate_old)."""
    text = text.split(NOTES_BEGIN)[0]
    return {m.group(1): m.group(0) for m in CLASS_RE.finditer(text)} or migrate_old(text)


def migrate_old(text):
    """The one-report layout before the classes (banners, ## Setup, the measuring text, ## PROFILE,
    ## Notes) as the section of the class its CPU line names: the banners, Setup lines and profile
    tables as they were, the profiles one heading level down; the measuring text is the header's."""
    head, found, rest = text.partition("\n## Setup\n")
    if not found:
        return {}
    setup, _, measured = rest.split("\n## Notes\n")[0].partition("\nHow each number is measured:\n")
    k = measured.find("\n## ")
    profiles = re.sub(r"^## ", "### ", measured[k + 1:], flags=re.M) if k >= 0 else ""
    cpu = next((l for l in setup.splitlines() if l.startswith("- CPU: ")), "")
    flags = {f: v == "yes" for f, v in re.findall(r"(\w+) (yes|no)\b", cpu)}
    family = re.search(r"\bfamily (\d+)", cpu)
    key = cpu_class({"flags": flags, "vendor_id": "AuthenticAMD" if "AuthenticAMD" in cpu else "",
                     "cpu_family": family.group(1) if family else None})
    if key is None:
        raise SystemExit(f"bench_vs_llamacpp: an old-layout report whose CPU line names no class: {cpu!r}")
    banners = [x for l in head.splitlines() if l.startswith("> ") for x in (l, "")]
    return {key: class_section(key, banners + [setup.strip("\n"), "", profiles])}


def header_lines():
    titles = "; ".join(CLASSES.values())
    return [
        "# glimpse vs llama.cpp on CPU — Qwen3-VL-2B-Instruct",
        "",
        f"Generated by `scripts/bench_vs_llamacpp.sh`: one section per CPU class ({titles}), each from "
        "the last run of that class. A run rewrites this header and its own class's section; the other "
        "classes' sections and the notes at the end are kept. The AVX2 section is measured on a CPU "
        "without AVX-512, or with `BENCH_CLASS=avx2` on one with it (glimpse capped by `GLIMPSE_SIMD=avx2`, "
        "llama.cpp built without AVX-512); its setup says which. Other models (`BENCH_MODEL`: the 4B, 8B, "
        "or the 30B-A3B mixture of experts, possibly with fewer layers, `BENCH_LAYERS`) get sections of their "
        "own after these, titled with the class and the model.",
        "",
        "How each number is measured:",
        "",
        "- llama.cpp prefill / decode: `llama-bench -p 512 -n 128 -t N` (decode from an empty context), and "
        "`llama-bench -p 0 -n 128 -d 512 -t N` (decode after 512 tokens of context).",
        "- llama.cpp vision encode: `llama-mtmd-cli -c 8192` with the test image, its `mtmd batch encoding done in N ms` "
        "line (mtmd_batch_encode: vision tower + mergers; preprocessing is not included).",
        "- llama.cpp TTFT, load, RSS: `llama-server -m TEXT --mmproj MMPROJ -t N -c 8192 -np 1` over HTTP: load = "
        "process start to `/health` 200 (includes its warm-up); TTFT = request sent to first streamed content "
        "token, measured by the client (greedy, `cache_prompt`); follow-up = same messages + the answer + a new "
        "short question; peak RSS = the server's VmHWM right after the image turn. These TTFTs include HTTP, "
        "base64 and PNG decoding (a few ms).",
        "- glimpse: `glimpse bench -m FILE --image IMG --prompt-tokens 512 --gen-tokens 128 --threads N --json` "
        "(one process; load = mmap + model construction; TTFT from preprocessing on; decode follows the 512-token "
        "prompt, and again from a one-token context; peak RSS over the whole bench).",
        "- Test image: 448×448 PNG (196 image tokens), `scripts/bench_vs_llamacpp.py png`. llama.cpp's "
        "vision tower is its f32 mmproj in every profile.",
        "- Ratio: glimpse ÷ llama.cpp for speeds, llama.cpp ÷ glimpse for times and memory: > 1 means glimpse is better.",
        "- Decode bandwidth utilisation = weight bytes read per token (text tensors without the token "
        "embedding, plus the output matrix — the token embedding when tied) × decode tok/s from an empty context "
        "÷ measured bandwidth.",
    ]


def banner_lines(results):
    L = []
    if results.get("draft"):
        reason = results.get("draft_reason") or "measured on a busy machine"
        L += ["> **DRAFT — not final results.** " + reason[0].upper() + reason[1:] + ".", ""]
    if results.get("errors"):
        L += ["> **Incomplete run:** " + "; ".join(results["errors"]), ""]
    return L


def setup_lines(key, results):
    m, v = results["machine"], results["versions"]
    fl = ", ".join(f"{k} {'yes' if val else 'no'}" for k, val in m.get("flags", {}).items()
                   if k in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_int8", "amx_bf16"))
    guest = f", {m['hypervisor_vendor']} guest" if m.get("hypervisor_vendor") else ""
    family = f" family {m['cpu_family']}" if m.get("cpu_family") else ""
    L = [f"- Date: {m.get('date')}",
         f"- CPU: {m.get('cpu')} ({m.get('vendor_id', '')}{family}{guest}), {m.get('physical_cores')} physical cores / "
         f"{m.get('logical_cpus')} logical CPUs, L3 {m.get('l3_cache', '?')}; {fl}",
         f"- RAM: {m.get('ram_bytes', 0) / 2**30:.1f} GiB; kernel {m.get('kernel')}"]
    if m.get("membw"):
        mb = m["membw"]
        L.append(f"- Streaming read bandwidth (scripts/membw.c, {mb['threads']} threads, "
                 f"{mb['bytes'] / 2**30:.0f} GiB array, best of {mb['runs']}): **{mb['gb_s']:.1f} GB/s**")
    L.append(f"- Threads: **{m.get('threads')}** for both tools (default: the physical cores; `THREADS=N` overrides)")
    L.append(f"- llama.cpp: {v.get('llama_cpp')}")
    L.append(f"- glimpse: {v.get('glimpse')}")
    if key.startswith("avx2") and results.get("capped"):
        L.append("- AVX2 path capped on this AVX-512 CPU (`BENCH_CLASS=avx2`): glimpse with `GLIMPSE_SIMD=avx2`, "
                 "llama.cpp built without AVX-512 (`GGML_NATIVE=OFF`: AVX2, FMA, F16C; no AVX-512, AVX-VNNI or AMX)")
    elif key.startswith("avx2"):
        L.append("- AVX2 path on a CPU without AVX-512: both tools as built for it (llama.cpp `GGML_NATIVE=ON`)")
    model, layers = model_of(results)
    name, total = MODELS[model]
    kept = (f"; only the first {layers} of its {total} text layers (`--layers {layers}`: every tensor keeps its "
            f"real shape, a token's work and weight reads scale with the layers kept), the same checkpoint for both tools"
            if layers else "")
    L.append(f"- Model: full-size {name} architecture with random bf16 weights "
             f"(`scripts/synth_checkpoint.py --size {model}`, seed {results.get('seed', 0)}; speed does not depend on "
             f"the values){kept}, converted by each tool's own converter")
    L.append(f"- Repetitions: {results.get('reps')} (llama-bench `-r`, glimpse `--repetitions`, "
             f"llama-server / llama-mtmd-cli runs; medians)")
    return L


def profile_lines(prof, lr, gr, bw):
    labels = {"f32": "f32", "q8_0": "q8_0", "q4_K": "q4_K (llama.cpp Q4_K_M, glimpse q4_k)"}
    L = [f"### {labels.get(prof, prof)}", ""]
    files = []
    if lr.get("file_bytes"):
        files.append(f"llama.cpp text {lr['file_bytes'] / 1e9:.2f} GB + mmproj {lr['mmproj_bytes'] / 1e9:.2f} GB")
    if gr.get("file_bytes"):
        files.append(f"glimpse {gr['file_bytes'] / 1e9:.2f} GB (one file)")
    if files:
        L += ["Files: " + "; ".join(files) + ".", ""]
    L += [table(lr, gr), ""]
    extra = []
    if lr.get("image_turn_prompt_tokens"):
        extra.append(f"llama.cpp image turn {lr['image_turn_prompt_tokens']} prompt tokens, follow-up reused "
                     f"{lr.get('followup_cached_tokens')} cached tokens")
    if gr.get("image_tokens"):
        extra.append(f"glimpse {gr['image_tokens']} image tokens, follow-up reused "
                     f"{gr.get('cached_prompt_tokens', '?')} cached tokens, SIMD {gr.get('simd', '?')}"
                     + (f", q8_0/q4_K weights: {gr['quantized_weights']}" if gr.get("quantized_weights") else ""))
    if extra:
        L += ["Turns: " + "; ".join(extra) + ".", ""]
    return L + ["Decode bandwidth utilisation:", "", bw_line("llama.cpp", lr, bw), bw_line("glimpse", gr, bw), ""]


def results_section(results):
    """(class, its section) of a run's results; results without a class (older results.json) get
    the class of their machine's flags and vendor."""
    cls = results.get("class") or cpu_class(results["machine"])
    if cls is None:
        raise SystemExit("bench_vs_llamacpp: the results' machine has no AVX2: no class to report under")
    bw = (results["machine"].get("membw") or {}).get("gb_s")
    bw = bw * 1e9 if bw else None
    L = banner_lines(results) + setup_lines(cls, results) + [""]
    for prof in results["profiles"]:
        L += profile_lines(prof, results["llama"].get(prof) or {}, results["glimpse"].get(prof) or {}, bw)
    key, title = section_key_and_title(cls, results)
    return key, class_section(key, L, title)


def write_report(results, out_md):
    """Rewrites out_md: the header, the section of results' class (none if results is None: only
    an old layout is converted) and the other sections and the notes as they were."""
    text = read_text(out_md)
    sections = class_sections(text)
    if results is not None:
        key, sections[key] = results_section(results)
    order = [k for k in CLASSES if k in sections] + [k for k in sections if k not in CLASSES]
    notes = "\n".join(["## Notes", "", NOTES_BEGIN, read_notes(text), NOTES_END])
    parts = ["\n".join(header_lines()), *(sections[k] for k in order), notes]
    Path(out_md).write_text("\n\n".join(parts) + "\n", encoding="utf-8")
    log(f"wrote {out_md}")


# --- run ------------------------------------------------------------------------------------------------

def cmd_run(cfg):
    for k in ("threads", "reps", "prompt_tokens", "gen_tokens", "answer_tokens"):
        cfg[k] = int(cfg[k])
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    outdir = Path(cfg["work"]) / "results" / stamp
    outdir.mkdir(parents=True, exist_ok=True)
    log(f"logs and raw results in {outdir}")
    membw = None
    if cfg.get("membw"):
        out = run_cmd([cfg["membw"], cfg["threads"], 10, 2], outdir / "membw.log")
        membw = json.loads(out.strip().splitlines()[-1])
        log(f"memory bandwidth: {membw['gb_s']:.1f} GB/s with {cfg['threads']} threads")
    machine = machine_info(cfg["threads"], membw)
    results = {"machine": machine, "class": cfg.get("class") or cpu_class(machine), "capped": bool(cfg.get("capped")),
               "versions": cfg["versions"], "model": cfg.get("model") or "2b", "layers": cfg.get("layers"),
               "profiles": cfg["profiles"], "reps": cfg["reps"], "seed": cfg.get("seed", 0),
               "llama": {}, "glimpse": {}, "errors": [], "draft": bool(cfg.get("draft")),
               "draft_reason": cfg.get("draft_reason") or "measured while other work was running on the machine"}
    for prof in cfg["profiles"]:
        if not cfg.get("skip_llama"):
            log(f"== llama.cpp {prof}")
            results["llama"][prof] = run_llama(cfg, prof, outdir)
            log(json.dumps({k: v for k, v in results["llama"][prof].items() if not isinstance(v, (dict, list))}))
        if cfg.get("glimpse_error"):
            continue
        log(f"== glimpse {prof}")
        try:
            results["glimpse"][prof] = run_glimpse(cfg, prof, outdir)
            log(json.dumps({k: v for k, v in results["glimpse"][prof].items() if not isinstance(v, (dict, list))}))
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            results["errors"].append(f"glimpse {prof}: {e}")
            log(f"ERROR: glimpse {prof}: {e}")
    if cfg.get("glimpse_error"):
        results["errors"].append(cfg["glimpse_error"])
    (outdir / "results.json").write_text(json.dumps(results, indent=2))
    write_report(results, cfg["out"])
    log(f"raw results: {outdir / 'results.json'}")
    return 1 if results["errors"] else 0


def main():
    ap = argparse.ArgumentParser(description="helper of scripts/bench_vs_llamacpp.sh")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("fingerprint"); p.add_argument("dir")
    p = sub.add_parser("png"); p.add_argument("out")
    p = sub.add_parser("gguf-bytes"); p.add_argument("file")
    p = sub.add_parser("run"); p.add_argument("--config", required=True)
    p = sub.add_parser("class"); p.add_argument("requested", nargs="?", default="")
    p = sub.add_parser("report"); p.add_argument("results"); p.add_argument("out")
    p = sub.add_parser("migrate"); p.add_argument("out")
    a = ap.parse_args()
    if a.cmd == "fingerprint":
        print(fingerprint(a.dir))
    elif a.cmd == "png":
        write_png(a.out)
    elif a.cmd == "gguf-bytes":
        print(json.dumps(decode_bytes_per_token(a.file), indent=2))
    elif a.cmd == "class":
        print(*choose_class(a.requested, cpu_info()))
    elif a.cmd == "run":
        return cmd_run(json.loads(Path(a.config).read_text()))
    elif a.cmd == "report":
        write_report(json.loads(Path(a.results).read_text()), a.out)
    elif a.cmd == "migrate":
        write_report(None, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
