#!/usr/bin/env python3
"""Generates src/text/hf_unicode_tables.inc: where Hugging Face `tokenizers` classifies a code point
differently from utf8proc.

Why: the BERT normalizer and pre-tokenizer in `tokenizers` take Unicode categories (control, Mn,
punctuation) from the `unicode_categories` crate, whose tables are several Unicode versions older
than utf8proc's, and NFD from `unicode-normalization-alignments` (also older), while lowercasing
comes from Rust's char::to_lowercase (newer than utf8proc). The WordPiece tokenizer asks utf8proc
first and then these small exception tables, so its ids match `tokenizers` for every code point.

The script probes every code point through each normalizer step and the pre-tokenizer of the
installed `tokenizers`, compares with the same step computed from utf8proc (loaded with ctypes),
derives the exception tables, re-simulates the C++ logic with them and fails unless every code
point then agrees. Run it after upgrading either library:

    python3 scripts/gen_hf_unicode_tables.py > src/text/hf_unicode_tables.inc
"""
import ctypes
import sys

import tokenizers
from tokenizers import normalizers, pre_tokenizers

lib = ctypes.CDLL("libutf8proc.so.2")
lib.utf8proc_category.restype = ctypes.c_int
lib.utf8proc_category.argtypes = [ctypes.c_int32]
lib.utf8proc_tolower.restype = ctypes.c_int32
lib.utf8proc_tolower.argtypes = [ctypes.c_int32]
lib.utf8proc_unicode_version.restype = ctypes.c_char_p
lib.utf8proc_decompose_char.restype = ctypes.c_ssize_t
lib.utf8proc_decompose_char.argtypes = [ctypes.c_int32, ctypes.POINTER(ctypes.c_int32),
                                        ctypes.c_ssize_t, ctypes.c_int,
                                        ctypes.POINTER(ctypes.c_int)]
UTF8PROC_DECOMPOSE = 1 << 4
# utf8proc_category values
CN, MN, PC, PO, ZS, ZL, ZP, CC, CF, CS, CO = 0, 6, 12, 18, 23, 24, 25, 26, 27, 28, 29
ASCII_PUNCT = set('!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~')
RUST_WHITESPACE_EXTRA = {0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x85}  # White_Space beyond Zs/Zl/Zp

_buf = (ctypes.c_int32 * 32)()
_bound = ctypes.c_int(0)


def category(c):
    return lib.utf8proc_category(c)


def decompose(c):
    n = lib.utf8proc_decompose_char(c, _buf, 32, UTF8PROC_DECOMPOSE, ctypes.byref(_bound))
    assert 0 < n <= 32
    return [_buf[i] for i in range(n)]


def is_whitespace(c):  # Rust char::is_whitespace (White_Space property)
    return c in RUST_WHITESPACE_EXTRA or category(c) in (ZS, ZL, ZP)


def in_table(c, table):
    return c in table


class Tables:
    def __init__(self):
        self.kept_controls = set()       # utf8proc Cc/Cf/Co/Cs, HF keeps them (clean_text)
        self.extra_controls = set()      # HF drops them, utf8proc does not call them control
        self.kept_nonspacing = set()     # utf8proc Mn, HF keeps them (strip_accents)
        self.extra_nonspacing = set()    # HF strips them, utf8proc does not call them Mn
        self.not_decomposed = set()      # utf8proc decomposes them, HF's NFD does not
        self.extra_lowercase = {}        # HF lowercases them, utf8proc does not (or differently)
        self.not_punctuation = set()     # utf8proc P*, HF does not isolate them
        self.extra_punctuation = set()   # HF isolates them, utf8proc does not call them P*

    # The C++ logic, step by step (src/text/wordpiece.cpp).
    def clean(self, c):
        if c in (0x09, 0x0A, 0x0D):
            return " "
        control = (category(c) in (CC, CF, CS, CO) and c not in self.kept_controls) \
            or c in self.extra_controls
        if c == 0 or c == 0xFFFD or control:
            return ""
        if is_whitespace(c):
            return " "
        return chr(c)

    def is_nonspacing(self, c):
        return (category(c) == MN and c not in self.kept_nonspacing) or c in self.extra_nonspacing

    def strip(self, c):
        parts = [c] if c in self.not_decomposed else decompose(c)
        return "".join(chr(p) for p in parts if not self.is_nonspacing(p))

    def lower(self, c):
        if c == 0x130:
            return "i\u0307"
        if c in self.extra_lowercase:
            return chr(self.extra_lowercase[c])
        return chr(lib.utf8proc_tolower(c))

    def pre(self, c):  # 'space', 'punct' or 'word'
        if is_whitespace(c):
            return "space"
        if c < 128:
            return "punct" if chr(c) in ASCII_PUNCT else "word"
        punct = (PC <= category(c) <= PO and c not in self.not_punctuation) \
            or c in self.extra_punctuation
        return "punct" if punct else "word"


def hf_pre_class(pre, s):
    words = [w for w, _ in pre.pre_tokenize_str("a" + s + "b")]
    if words == ["a", "b"]:
        return "space"
    if words == ["a", s, "b"]:
        return "punct"
    if words == ["a" + s + "b"]:
        return "word"
    return repr(words)


def code_points():
    for c in range(0x110000):
        if not 0xD800 <= c <= 0xDFFF:
            yield c


def main():
    clean = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=False,
                                       strip_accents=False, lowercase=False)
    strip = normalizers.BertNormalizer(clean_text=False, handle_chinese_chars=False,
                                       strip_accents=True, lowercase=False)
    lower = normalizers.BertNormalizer(clean_text=False, handle_chinese_chars=False,
                                       strip_accents=False, lowercase=True)
    pre = pre_tokenizers.BertPreTokenizer()
    hf = {c: (clean.normalize_str(chr(c)), strip.normalize_str(chr(c)),
              lower.normalize_str(chr(c)), hf_pre_class(pre, chr(c))) for c in code_points()}

    t = Tables()
    problems = []
    for c in code_points():
        s = chr(c)
        h_clean, h_strip, h_lower, h_pre = hf[c]
        if t.clean(c) != h_clean:
            if h_clean == s and t.clean(c) == "":
                t.kept_controls.add(c)
            elif h_clean == "" and t.clean(c) == s:
                t.extra_controls.add(c)
            else:
                problems.append(f"clean U+{c:04X}: tokenizers {h_clean!r}, utf8proc {t.clean(c)!r}")
        if t.strip(c) != h_strip:
            if h_strip == "" and decompose(c) == [c]:
                t.extra_nonspacing.add(c)
            elif h_strip == s:
                if decompose(c) != [c]:
                    t.not_decomposed.add(c)
                if category(c) == MN:
                    t.kept_nonspacing.add(c)
        if t.lower(c) != h_lower:
            if len(h_lower) == 1:
                t.extra_lowercase[c] = ord(h_lower)
            else:
                problems.append(f"lowercase U+{c:04X}: tokenizers {h_lower!r}")
        if t.pre(c) != h_pre:
            if h_pre == "punct" and t.pre(c) == "word":
                t.extra_punctuation.add(c)
            elif h_pre == "word" and t.pre(c) == "punct":
                t.not_punctuation.add(c)
            else:
                problems.append(f"pre-tokenizer U+{c:04X}: tokenizers {h_pre}, ours {t.pre(c)}")

    # Re-simulate with the final tables: every code point must now agree in every step.
    for c in code_points():
        ours = (t.clean(c), t.strip(c), t.lower(c), t.pre(c))
        if ours != hf[c]:
            problems.append(f"U+{c:04X}: tokenizers {hf[c]!r}, with tables {ours!r}")
    if problems:
        print("\n".join(problems[:50]), file=sys.stderr)
        sys.exit(f"{len(problems)} code points need a rule these tables cannot express")

    def ranges(name, values, why):
        values = sorted(values)
        merged = []
        for v in values:
            if merged and merged[-1][1] == v - 1:
                merged[-1][1] = v
            else:
                merged.append([v, v])
        items = [f"{{0x{a:X}, 0x{b:X}}}" for a, b in merged] or ["{0x110000, 0x110000}"]
        lines = wrap(items)
        return f"// {why}\nconstexpr CodepointRange {name}[] = {{\n{lines}}};\n"

    def wrap(items, width=96):
        out, line = [], "   "
        for item in items:
            if len(line) + len(item) + 2 > width:
                out.append(line.rstrip())
                line = "   "
            line += " " + item + ","
        out.append(line.rstrip())
        return "\n".join(out) + "\n"

    pairs = [f"{{0x{a:X}, 0x{b:X}}}" for a, b in sorted(t.extra_lowercase.items())]
    print(f"""// Generated by scripts/gen_hf_unicode_tables.py; do not edit by hand.
// tokenizers {tokenizers.__version__}, utf8proc {lib.utf8proc_unicode_version().decode()} (Unicode).
// Where Hugging Face tokenizers' BERT normalizer / pre-tokenizer classifies a code point differently
// from utf8proc; each table is sorted, ranges inclusive. An empty table holds one impossible range.
constexpr const char* kHfTablesUtf8procVersion = "{lib.utf8proc_unicode_version().decode()}";
""")
    print(ranges("kHfKeptControls", t.kept_controls,
                 "utf8proc says Cc/Cf/Co/Cs, tokenizers' clean_text keeps them."))
    print(ranges("kHfExtraControls", t.extra_controls,
                 "tokenizers' clean_text drops them, utf8proc does not call them control."))
    print(ranges("kHfKeptNonspacingMarks", t.kept_nonspacing,
                 "utf8proc says Mn, tokenizers' strip_accents keeps them."))
    print(ranges("kHfExtraNonspacingMarks", t.extra_nonspacing,
                 "tokenizers' strip_accents drops them, utf8proc does not call them Mn."))
    print(ranges("kHfNotDecomposed", t.not_decomposed,
                 "utf8proc's NFD decomposes them, tokenizers' NFD leaves them whole."))
    print(ranges("kHfNotPunctuation", t.not_punctuation,
                 "utf8proc says P*, tokenizers' BertPreTokenizer does not isolate them."))
    print(ranges("kHfExtraPunctuation", t.extra_punctuation,
                 "tokenizers' BertPreTokenizer isolates them, utf8proc does not call them P*."))
    print("// Rust's char::to_lowercase maps them, utf8proc_tolower does not (or not the same way).")
    print("struct LowercasePair { char32_t from, to; };")
    pair_lines = wrap(pairs) if pairs else "    {0x110000, 0x110000}\n"
    print("constexpr LowercasePair kHfExtraLowercase[] = {\n" + pair_lines + "};")


if __name__ == "__main__":
    main()
