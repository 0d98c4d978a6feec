"""One greeting per word: python3 greet.py PREFIX WORD OUTPUT (a word is letters only)."""

import sys

prefix, word, output = sys.argv[1:4]
if not word.isalpha():
    raise ValueError(f"word {word!r} is not made of letters")
with open(output, "w", encoding="utf-8") as out:
    out.write(f"{prefix}, {word}!\n")
