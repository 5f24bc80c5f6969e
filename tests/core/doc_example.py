#!/usr/bin/env python3
"""Extracts the first C block of docs/api.md into a compilable file, so the
guide's training loop is built with every build and cannot drift from the API."""
import re
import sys

text = open(sys.argv[1], encoding="utf-8").read()
code = re.findall(r"```c\n(.*?)```", text, re.S)[0]
with open(sys.argv[2], "w", encoding="utf-8") as f:
    f.write("/* Generated from docs/api.md by tests/core/doc_example.py. */\n")
    f.write(code)
    f.write("\nint main(void) {\n    (void)train; /* compiled and linked, not run: it trains ViT-B/16 */\n    return 0;\n}\n")
