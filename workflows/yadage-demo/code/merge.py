"""Merge greetings, sorted, and count them: python3 merge.py OUTPUT GREETING..."""

import sys

output, *greetings = sys.argv[1:]
lines = sorted(open(path, encoding="utf-8").read() for path in greetings)
with open(output, "w", encoding="utf-8") as out:
    out.write("".join(lines))
    out.write(f"{len(lines)} greetings\n")
