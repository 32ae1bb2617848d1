#!/usr/bin/env python3
"""Runs the README's command blocks exactly as written, in order, as one shell
session (the way a reader pastes them into one terminal).

    python3 .ci/readme_blocks.py [--list] README.md WORKDIR

- A block fenced as ```sh is run. Its lines go into one bash script, in
  document order, so what one block starts (a server in the background) or
  exports (luarocks path) is there for the next, as in a terminal.
- A block fenced as ```lua NAME.lua is a file the README asks the reader to
  save: it is written to WORKDIR/NAME.lua at that point of the script.
- Any other block (```sh fedora, ```console, ```lua without a file name,
  ```text) is not run: its info string says why (another platform, an example
  of output, a fragment).

The script runs in WORKDIR (a fresh clone, so the README is checked the way a
new user meets it) under `set -euo pipefail`: the first command that fails
fails the run. Exits with the script's status.
"""
import os
import re
import subprocess
import sys

FENCE = re.compile(r"^( *)```(.*)$")


def blocks(text):
    """(info string, body, line number) of every fenced block; a block in a
    list item is indented, and its lines lose the fence's indentation."""
    out, info, body, start, indent = [], None, [], 0, ""
    for number, line in enumerate(text.splitlines(), 1):
        fence = FENCE.match(line)
        if info is None and fence:
            indent, info, body, start = fence.group(1), fence.group(2).strip(), [], number
        elif info is not None and fence and fence.group(2).strip() == "":
            out.append((info, "\n".join(body) + "\n", start))
            info = None
        elif info is not None:
            body.append(line[len(indent):] if line.startswith(indent) else line)
    if info is not None:
        raise SystemExit(f"README: the block opened on line {start} is never closed")
    return out


def script_of(readme):
    # what the blocks left running (a server, nginx) ends with the session
    parts = ["set -euo pipefail", "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT"]
    ran, skipped = [], []
    for info, body, line in blocks(readme):
        words = info.split()
        if words == ["sh"]:
            parts.append(f"echo '--- README line {line}' >&2")
            parts.append(body)
            ran.append(line)
        elif len(words) == 2 and words[0] == "lua" and words[1].endswith(".lua"):
            name = words[1]
            if not re.fullmatch(r"[A-Za-z0-9_.-]+\.lua", name):
                raise SystemExit(f"README line {line}: bad file name {name!r}")
            marker = "README_LUA_EOF"
            if marker in body:
                raise SystemExit(f"README line {line}: the block holds {marker}")
            parts.append(f"cat > {name} <<'{marker}'\n{body}{marker}")
            ran.append(line)
        else:
            skipped.append((line, info or "(no info string)"))
    return "\n".join(parts) + "\n", ran, skipped


def main():
    args = sys.argv[1:]
    listing = args[:1] == ["--list"]
    if listing:
        args = args[1:]
    if len(args) != 2:
        raise SystemExit(__doc__)
    readme, workdir = args
    with open(readme, encoding="utf-8") as f:
        script, ran, skipped = script_of(f.read())
    if listing:
        print(script)
        for line, info in skipped:
            print(f"# not run: line {line} ({info})")
        return 0
    for line, info in skipped:
        print(f"readme: not run: the block on line {line} ({info})", file=sys.stderr)
    print(f"readme: running {len(ran)} blocks in {workdir}", file=sys.stderr)
    status = subprocess.run(["bash", "-c", script], cwd=workdir).returncode
    print(f"readme: {'all blocks ran' if status == 0 else f'failed (exit status {status})'}",
          file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
