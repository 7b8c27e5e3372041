#!/usr/bin/env python3
"""qrr's tokenizer held to Hugging Face tokenizers on generated text.

Writes a small model with the reference tokenizer (build/qgen, then build/qconvert), makes
strings of several kinds (seeded), tokenizes each with `qrr tokenize` and with the
`tokenizers` library (encode, add_special_tokens=False, as the recipe does) and reports every
string whose ids differ, shrunk to a short reproducer. With --every-code-point it also sends
each Unicode scalar value alone and between letters, digits, spaces and an apostrophe.
Not used at run time; needs `tokenizers` (pip install tokenizers). docs/tokenizer.md says more.

Exit: 0 every string gave the same ids, 1 some did not, 2 usage or setup error.
"""

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import unicodedata

BATCH = 5000  # lines per `qrr tokenize` process
SHRINK_SECONDS = 30
SHOWN = 10  # differing strings shown (and shrunk), the rest counted

SCALARS = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
WHITESPACE = [" ", "\t", "\n", "\r", "\r\n", "\x0b", "\x0c", "\x1c", "\x1f", "\x85", "\xa0",
              "\u1680", "\u2000", "\u2007", "\u200a", "\u200b", "\u200d", "\u2028", "\u2029",
              "\u202f", "\u205f", "\u3000", "\ufeff"]
APOSTROPHES = ["'", "'", "\u2019", "\u02bc", "`", "''"]
CONTRACTION_TAILS = ["s", "t", "re", "ve", "m", "ll", "d", "S", "T", "RE", "Ve", "LL", "", "sx"]
OTHER_DIGITS = ("\u0660\u0669\u06f5\u0966\u096f\u0e50\u1040\u17e0\uff10\uff19\u00b2\u00b3\u00b9"
                "\u00bc\u2070\u2074\u2089\u2160\u216b\u2170\u2180\u2460\u2473\u2776\u3007\u3021"
                "\u3280\u4e00\u5341\U0001d7ce\U0001d7ff\U000104a0\U0001f100")
SCRIPT_RANGES = [
    (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x3040, 0x30FF), (0xFF66, 0xFF9F),
    (0xAC00, 0xD7A3), (0x1100, 0x11FF), (0x0E00, 0x0E7F), (0x0600, 0x06FF), (0xFB50, 0xFDFF),
    (0x0590, 0x05FF), (0x0900, 0x097F), (0x0400, 0x04FF), (0x0370, 0x03FF), (0x1F00, 0x1FFF),
    (0x00C0, 0x024F), (0x1E00, 0x1EFF), (0x1F300, 0x1FAFF), (0x2600, 0x27BF), (0xE000, 0xF8FF),
    (0xF0000, 0xF00FF), (0xFDD0, 0xFDEF), (0xFFF0, 0xFFFF), (0x01, 0x1F), (0x7F, 0x9F),
    (0xE0000, 0xE007F), (0xFE00, 0xFE0F), (0xE0100, 0xE01EF), (0x50000, 0x500FF),
]
EMOJI = ["\U0001F468\u200D\U0001F469\u200D\U0001F467", "\U0001F44D\U0001F3FD", "\u2764\uFE0F",
         "\U0001F1FA\U0001F1F8", "1\uFE0F\u20E3", "\U0001F3F4\U000E0067\U000E0062\U000E007F"]
PUNCTUATION = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
FILLER = [" ", "\n", "a", "1", "'s", ".", "  ", "\t", "x", "\u4e2d"]


class Tables:
    """Code points by general category, combining marks and decomposable characters."""

    def __init__(self):
        self.by_category = {}
        for c in SCALARS:
            self.by_category.setdefault(unicodedata.category(chr(c)), []).append(c)
        self.categories = sorted(self.by_category)
        self.marks = [c for c in self.by_category["Mn"] + self.by_category["Mc"]
                      if unicodedata.combining(chr(c))]
        self.decomposable = [c for c in SCALARS if unicodedata.decomposition(chr(c))]


def run(rng, n, *pick):
    """n pieces, each made by one of the pick functions, joined."""
    return "".join(rng.choice(pick)(rng) for _ in range(rng.randint(1, n)))


def ascii_and_spaces(rng, t):
    return run(rng, 30,
               lambda r: "".join(r.choices("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
                                           k=r.randint(1, 8))),
               lambda r: "".join(r.choices("0123456789", k=r.randint(1, 5))),
               lambda r: "".join(r.choices(PUNCTUATION, k=r.randint(1, 4))),
               lambda r: "".join(r.choices(WHITESPACE[:5], k=r.randint(1, 4))),
               lambda r: "".join(r.choices(WHITESPACE, k=r.randint(1, 4))))


def contractions(rng, t):
    def word(r):
        w = r.choice(["I", "you", "it", "they", "don", "won", "O", "x_y", "\u00e9", "\u4e2d", "",
                      "1"])
        w = "".join(ch.upper() if r.random() < 0.5 else ch for ch in w)
        a, tail = r.choice(APOSTROPHES), r.choice(CONTRACTION_TAILS)
        return r.choice([w + a + tail, a + tail + w, a + w + a, w + a]) + r.choice(
            [" ", "", "\n", ". ", "'", "\xa0"])
    return run(rng, 10, word)


def digits(rng, t):
    return run(rng, 8,
               lambda r: "".join(r.choices("0123456789", k=r.randint(1, 12))),
               lambda r: "".join(r.choices(OTHER_DIGITS, k=r.randint(1, 12))),
               lambda r: r.choice(["1.5e10", "-", "$", "%", ",", "x", "\u0627\u0644", " ", "\n"]))


def normalization(rng, t):
    def piece(r):
        k = r.random()
        if k < 0.3:  # a base and marks in any order: NFC reorders and composes
            base = r.choice("eaouAnc1 '<>=") + r.choice(["", "\u03b1", "\u05d0", "\u0915"])
            return base + "".join(chr(r.choice(t.marks)) for _ in range(r.randint(1, 4)))
        if k < 0.45:  # Hangul jamo that compose into syllables
            lead, vowel = chr(r.randint(0x1100, 0x1112)), chr(r.randint(0x1161, 0x1175))
            return lead + vowel + r.choice(["", chr(r.randint(0x11A8, 0x11C2))])
        if k < 0.8:  # a decomposable character as written, decomposed, or compatibility-decomposed
            ch = chr(r.choice(t.decomposable))
            if r.random() < 0.6:
                ch = unicodedata.normalize(r.choice(["NFC", "NFD", "NFKD"]), ch)
            return ch
        return r.choice(FILLER)
    return run(rng, 8, piece)


def scripts(rng, t):
    def piece(r):
        if r.random() < 0.8:
            lo, hi = r.choice(SCRIPT_RANGES)
            return "".join(chr(r.randint(lo, hi)) for _ in range(r.randint(1, 6)))
        return r.choice(EMOJI + FILLER)
    return run(rng, 10, piece)


def categories(rng, t):
    def piece(r):
        if r.random() < 0.75:
            pool = t.by_category[r.choice(t.categories)]
            return "".join(chr(r.choice(pool)) for _ in range(r.randint(1, 4)))
        return r.choice(FILLER)
    return run(rng, 10, piece)


def special_tokens(rng, t):
    def piece(r):
        tok, k = r.choice(t.added), r.random()
        if k < 0.3:
            return tok
        if k < 0.45:
            return " " + tok + r.choice([" ", "", "\n"])
        if k < 0.6:  # cut, or split by a space
            i = r.randint(1, len(tok) - 1)
            return r.choice([tok[:i], tok[i:], tok[:i] + " " + tok[i:]])
        if k < 0.7:
            return tok + r.choice(t.added)
        if k < 0.8:  # a mark that NFC would compose with the token's last or first character
            return r.choice([tok + "\u0338", "<\u0338" + tok, tok + "\u0301"])
        if k < 0.85:
            return tok[:-1] + tok
        return r.choice(["<", ">", "|", "<|", "|>", "<<"] + FILLER)
    return run(rng, 10, piece)


def mixed(rng, t):
    kinds = [ascii_and_spaces, contractions, digits, normalization, scripts, categories,
             special_tokens]
    return "".join(rng.choice(kinds)(rng, t) for _ in range(rng.randint(2, 4)))


def long_texts(rng, t, count):
    fixed = ["a" * 50000, " " * 50000, " " * 50000 + "x", "\n" * 30000, "1" * 50000,
             "e\u0301" * 30000, "a" + "\u0301" * 20000, "\u4e2d" * 40000, "'s" * 30000,
             "<|im_start|>" * 5000, "\U0001F600" * 20000, " \xa0" * 30000]
    out = fixed[:count]
    while len(out) < count:
        kind, n, s = rng.choice(KINDS[:-1])[1], rng.randint(10000, 100000), ""
        while len(s) < n:
            s += kind(rng, t)
        out.append(s[:n])
    return out


# name, generator, strings at --scale 1
KINDS = [
    ("ascii-and-spaces", ascii_and_spaces, 60000),
    ("contractions", contractions, 30000),
    ("digits", digits, 30000),
    ("normalization", normalization, 40000),
    ("scripts", scripts, 40000),
    ("categories", categories, 40000),
    ("special-tokens", special_tokens, 40000),
    ("mixed", mixed, 20000),
]


class Tokenizers:
    """The two tokenizers side by side."""

    def __init__(self, qrr, model, hf):
        self.qrr, self.model, self.hf = qrr, model, hf

    def ours(self, texts):
        ids = []
        for i in range(0, len(texts), BATCH):
            part = texts[i:i + BATCH]
            # half the lines with \u escapes, half as raw UTF-8: both JSON spellings
            lines = [json.dumps({"text": s}, ensure_ascii=bool(j % 2)) for j, s in enumerate(part)]
            proc = subprocess.run([self.qrr, "tokenize", self.model, "--no-verify"],
                                  input=("\n".join(lines) + "\n").encode(), capture_output=True)
            answers = [json.loads(line) for line in proc.stdout.splitlines()]
            if len(answers) != len(part):
                raise SystemExit(f"qrr tokenize answered {len(answers)} of {len(part)} lines "
                                 f"(exit {proc.returncode}): {proc.stderr.decode()[-500:]}")
            ids += [a.get("ids", a.get("error")) for a in answers]
        return ids

    def theirs(self, texts):
        return [e.ids for e in self.hf.encode_batch(texts, add_special_tokens=False)]

    def differing(self, texts):
        return [i for i, (a, b) in enumerate(zip(self.theirs(texts), self.ours(texts))) if a != b]


def shrink(tok, text):
    """The shortest text found (by dropping runs of code points) whose ids still differ."""
    deadline, cur, n = time.monotonic() + SHRINK_SECONDS, text, 2
    while len(cur) > 1 and time.monotonic() < deadline:
        size = max(1, len(cur) // n)
        candidates = [cur[:i] + cur[i + size:] for i in range(0, len(cur), size)]
        bad = set(tok.differing(candidates))
        if bad:
            cur, n = candidates[min(bad)], max(n - 1, 2)
        elif size == 1:
            break
        else:
            n = min(len(cur), n * 2)
    return cur


def every_code_point():
    alone = [chr(c) for c in SCALARS]
    between = [f"x{chr(c)}y{chr(c)}1{chr(c)} {chr(c)}{chr(c)}'s" for c in SCALARS]
    return [("every-code-point-alone", alone), ("every-code-point-between", between)]


def write_model(build, reference, workdir):
    model_dir, model = os.path.join(workdir, "model"), os.path.join(workdir, "tokenizer.qrr")
    for cmd in ([os.path.join(build, "qgen"), "-o", model_dir, "--tokenizer",
                 os.path.join(reference, "tokenizer")],
                [os.path.join(build, "qconvert"), model_dir, "-o", model, "--dtype", "f16"]):
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed (exit {proc.returncode}): "
                             f"{proc.stderr[-500:]}")
    return model


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(
        description="Compare `qrr tokenize` with Hugging Face tokenizers on generated strings.",
        epilog="Exit: 0 all the same, 1 some differ, 2 usage or setup error.")
    ap.add_argument("--build",
                    default=os.environ.get("QRR_BUILD", os.path.join(here, "..", "build")),
                    help="the build directory with qrr, qgen and qconvert "
                         "(default: $QRR_BUILD or build)")
    ap.add_argument("--reference", default=os.environ.get(
        "QRR_REFERENCE", os.path.join(here, "..", "..", "shared", "reference")),
        help="reference data with tokenizer/tokenizer.json "
             "(default: $QRR_REFERENCE or ../shared/reference)")
    ap.add_argument("--seed", type=int, default=1, help="the strings' random seed (default 1)")
    ap.add_argument("--scale", type=float, default=1.0,
                    help="multiplies the strings of each kind (default 1: 300,000 in all)")
    ap.add_argument("--every-code-point", action="store_true",
                    help="also every Unicode scalar value, alone and between other characters")
    args = ap.parse_args()
    if args.scale <= 0:
        ap.error("--scale must be positive")
    try:
        from tokenizers import Tokenizer
    except ImportError:
        print("tokenizer_diff: needs Hugging Face tokenizers (pip install tokenizers)",
              file=sys.stderr)
        return 2
    tokenizer_json = os.path.join(args.reference, "tokenizer", "tokenizer.json")
    if not os.path.isfile(tokenizer_json):
        print(f"tokenizer_diff: {tokenizer_json} not found (set --reference)", file=sys.stderr)
        return 2
    tables = Tables()
    with open(tokenizer_json, encoding="utf-8") as f:
        tables.added = [a["content"] for a in json.load(f)["added_tokens"]]
    try:
        with tempfile.TemporaryDirectory(prefix="qrr-tokdiff.") as workdir:
            model = write_model(args.build, args.reference, workdir)
            tok = Tokenizers(os.path.join(args.build, "qrr"), model,
                             Tokenizer.from_file(tokenizer_json))
            return compare(tok, tables, args)
    except SystemExit as e:
        print(f"tokenizer_diff: {e}", file=sys.stderr)
        return 2


def compare(tok, tables, args):
    groups = []
    for k, (name, kind, count) in enumerate(KINDS):
        rng = random.Random(args.seed * 100 + k)
        groups.append((name, [kind(rng, tables) for _ in range(max(1, round(count * args.scale)))]))
    groups.append(("long", long_texts(random.Random(args.seed * 100 + 99), tables,
                                      max(1, round(24 * args.scale)))))
    if args.every_code_point:
        groups += every_code_point()
    total = differ = 0
    for name, texts in groups:
        t0 = time.monotonic()
        bad = [i for j in range(0, len(texts), 20000) for i in
               (j + d for d in tok.differing(texts[j:j + 20000]))]
        print(f"{name:26} {len(texts):9,} strings {sum(map(len, texts)):12,} chars "
              f"{len(bad):6,} differ  {time.monotonic() - t0:6.1f} s", flush=True)
        total, differ = total + len(texts), differ + len(bad)
        shown = set()
        for i in bad[:SHOWN]:
            small = shrink(tok, texts[i])
            if small in shown:
                continue
            shown.add(small)
            print(f"  differs: {json.dumps(small)}  (code points "
                  f"{' '.join(f'U+{ord(c):04X}' for c in small[:40])})\n"
                  f"    tokenizers {tok.theirs([small])[0]}\n    qrr        {tok.ours([small])[0]}")
    print(f"{total:,} strings, {differ:,} with different ids")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
