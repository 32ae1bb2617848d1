#!/usr/bin/env python3
"""Seed corpus for the fuzz targets (fuzz/README.md).

Writes one file per response body found in
  - spec/fixtures/recorded/*.json  test-proxy recordings: Entries[].ResponseBody,
                                   and each $batch inner body (responses[].body)
  - spec/fixtures/*.json           local server fixtures, less their leading
                                   "#status" / "#header" lines
  - spec/fixtures/wire/*.json      REST spec examples: responses.<status>.body,
                                   and $batch inner bodies
into OUT (created). Bodies taken out of a JSON document are written back
compact, and once more indented, with every number spelled exactly as in the
source (longs above 2^53 stay exact).

  fuzz/make_corpus.py OUT [--seed-header | --gunzip]

--seed-header puts 4 bytes before each body: response_parser_fuzz.c takes
the first 4 bytes of an input as its PRNG seed (chunk splits, early stops).
Each body is then written with two different headers.
--gunzip writes each body for gunzip_diff.c: once as data to compress (a
first byte that is even), once gzipped as a stream to decode (odd).
Run from the repository root (paths are relative to it).
"""
import glob
import gzip
import hashlib
import json
import os
import sys


class RawNumber(str):
    """A number's source text, written back unquoted."""


def load(text):
    return json.loads(text, parse_int=RawNumber, parse_float=RawNumber,
                      parse_constant=RawNumber)


def dump(value, indent=None, level=0):
    nl = "" if indent is None else "\n" + " " * (indent * (level + 1))
    end = "" if indent is None else "\n" + " " * (indent * level)
    sep = ":" if indent is None else ": "
    if isinstance(value, RawNumber):
        return str(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        if not value:
            return "[]"
        return "[" + ",".join(nl + dump(v, indent, level + 1) for v in value) + end + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{" + ",".join(nl + json.dumps(k, ensure_ascii=False) + sep +
                              dump(v, indent, level + 1) for k, v in value.items()) + end + "}"
    raise TypeError(type(value))


def batch_bodies(body):
    """Inner bodies of a $batch response: {"responses":[{"body":...}]}."""
    if isinstance(body, dict) and isinstance(body.get("responses"), list):
        for r in body["responses"]:
            if isinstance(r, dict) and "body" in r:
                yield r["body"]


def from_recording(path):
    doc = load(open(path, encoding="utf-8").read())
    for i, entry in enumerate(doc.get("Entries", [])):
        body = entry.get("ResponseBody")
        if body is None:
            continue
        yield "e%d" % i, body
        for j, inner in enumerate(batch_bodies(body)):
            yield "e%d-batch%d" % (i, j), inner


def from_wire(path):
    doc = load(open(path, encoding="utf-8").read())
    responses = doc.get("responses")
    if not isinstance(responses, dict):
        return
    for status, resp in responses.items():
        if isinstance(resp, dict) and "body" in resp:
            yield str(status), resp["body"]
            for j, inner in enumerate(batch_bodies(resp["body"])):
                yield "%s-batch%d" % (status, j), inner


def fixture_body(path):
    lines = open(path, "rb").read().split(b"\n")
    while lines and (lines[0].startswith(b"#status") or lines[0].startswith(b"#header")):
        lines.pop(0)
    return b"\n".join(lines)


def main(argv):
    if len(argv) < 2 or argv[1].startswith("-"):
        sys.exit(__doc__)
    out = argv[1]
    seed_header = "--seed-header" in argv[2:]
    gunzip = "--gunzip" in argv[2:]
    os.makedirs(out, exist_ok=True)
    written = 0

    def write(name, data):
        nonlocal written
        variants = [b""]
        if seed_header:
            h = hashlib.sha1(name.encode()).digest()
            variants = [h[:4], h[4:8]]
        if gunzip:
            variants = [b"\x00\x07", b"\x01\x07"]
        for k, head in enumerate(variants):
            if gunzip and k == 1:
                data = gzip.compress(data, mtime=0)
            suffix = "" if len(variants) == 1 else "-s%d" % k
            with open(os.path.join(out, name + suffix + ".json"), "wb") as f:
                f.write(head + data)
            written += 1

    def write_value(name, value):
        if isinstance(value, str) and not isinstance(value, RawNumber):
            write(name, value.encode("utf-8"))   # a body that was not JSON
            return
        write(name, dump(value).encode("utf-8"))
        write(name + "-indented", dump(value, indent=2).encode("utf-8"))

    for path in sorted(glob.glob("spec/fixtures/recorded/*.json")):
        base = "rec-" + os.path.basename(path)[:-5]
        for tag, body in from_recording(path):
            write_value("%s-%s" % (base, tag), body)
    for path in sorted(glob.glob("spec/fixtures/*.json")):
        write("fixture-" + os.path.basename(path)[:-5], fixture_body(path))
    for path in sorted(glob.glob("spec/fixtures/wire/*.json")):
        base = "wire-" + os.path.basename(path)[:-5]
        for tag, body in from_wire(path):
            write_value("%s-%s" % (base, tag), body)
    print("make_corpus.py: %d files in %s" % (written, out))


if __name__ == "__main__":
    main(sys.argv)
