#!/usr/bin/env python3
"""Mirrors a checkout into a fixed folder of the test cache, by content.

usage: mirror_checkout.py SOURCE MIRROR

Copies the files git lists in SOURCE (tracked and untracked, not ignored; the working tree's
content, so uncommitted edits are included) into MIRROR, rewriting only files whose bytes
differ and deleting files an earlier mirroring copied that SOURCE no longer has. Files the
tests generate in MIRROR (ignored by git: node_modules, the fetched tokenizer's links) are
left alone.

Why: rustc compiles a source file's path into the build (panic locations, debug info), so the
same code in a second clone at another path misses every incremental cache; and a fresh clone
gives every file a new modification time, which cargo reads as a change. Built from the same
path, with unchanged files keeping their timestamps, a warm cache rebuilds only what changed.
A file whose content changed gets a new timestamp, so cargo can never take a stale artefact
for a fresh one.
"""
import os
import shutil
import subprocess
import sys


def listed_files(source):
    out = subprocess.run(
        ["git", "-C", source, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True,
        capture_output=True,
    ).stdout
    return sorted({p for p in out.decode().split("\0") if p})


def same_content(a, b):
    if os.path.islink(a) or os.path.islink(b):
        return os.path.islink(a) and os.path.islink(b) and os.readlink(a) == os.readlink(b)
    if not os.path.isfile(b) or os.path.getsize(a) != os.path.getsize(b):
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        return fa.read() == fb.read()


def main():
    source, mirror = (os.path.abspath(p) for p in sys.argv[1:3])
    manifest = os.path.join(mirror, ".mirrored-files")
    previous = set()
    if os.path.exists(manifest):
        with open(manifest) as f:
            previous = {line.rstrip("\n") for line in f if line.strip()}
    files = [p for p in listed_files(source) if os.path.lexists(os.path.join(source, p))]
    copied = 0
    for path in files:
        src, dst = os.path.join(source, path), os.path.join(mirror, path)
        if same_content(src, dst):
            # Same bytes: the mode may still differ (a script made executable).
            if not os.path.islink(src):
                os.chmod(dst, os.stat(src).st_mode & 0o7777)
            continue
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if os.path.lexists(dst) or os.path.isdir(dst):
            if os.path.isdir(dst) and not os.path.islink(dst):
                shutil.rmtree(dst)
            else:
                os.remove(dst)
        if os.path.islink(src):
            os.symlink(os.readlink(src), dst)
        else:
            shutil.copyfile(src, dst)
            os.chmod(dst, os.stat(src).st_mode & 0o7777)
        copied += 1
    gone = previous - set(files)
    for path in sorted(gone):
        dst = os.path.join(mirror, path)
        if os.path.lexists(dst) and not os.path.isdir(dst):
            os.remove(dst)
    with open(manifest, "w") as f:
        f.write("".join(p + "\n" for p in files))
    print(f"mirrored {source} into {mirror}: {copied} of {len(files)} files rewritten, "
          f"{len(gone)} removed")


if __name__ == "__main__":
    main()
