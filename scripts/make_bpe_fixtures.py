#!/usr/bin/env python3
"""GPT-2 byte-level BPE: Hugging Face `tokenizers` as the reference for wattwise.

The reference is tokenizers' BPE built from vocab.json + merges.txt the way GPT2TokenizerFast
builds it: ByteLevel pre-tokenizer (add_prefix_space=False, trim_offsets), no normalizer, no
special tokens around the text, "<|endoftext|>" an added special token (normalized=False). When
transformers is importable it is checked to give the same ids as GPT2TokenizerFast.

Modes:
  --fixtures DIR   write the small committed fixture: the hard cases (~400 texts and pairs, with
                   and without truncation) encoded by GPT-2 (DIR/hard_cases_gpt2.jsonl) and by
                   DIR/tiny/ (a committed slice of GPT-2: byte tokens + its first 1,000 merges;
                   DIR/hard_cases_tiny.jsonl), one {"text", ["text_pair"], "max_length", "ids",
                   "type_ids"} per line.
  --parity         encode >= 5,000 real texts (tiny shakespeare lines and paragraphs, IMDB reviews,
                   SST-2 sentences), pairs, the hard cases and every Unicode scalar value with both
                   `wattwise tokenize` (--wattwise BIN) and tokenizers; ids must match exactly.
  --bench          MB/s of wattwise (one thread) and tokenizers (encode_batch, one thread and its
                   default thread pool) on tiny shakespeare and IMDB.
  --unicode-table FILE   write src/text/bpe_unicode_tables.inc: code points that tokenizers'
                   pattern sees as \\p{L}/\\p{N} while utf8proc (through ctypes) does not.

    python3 scripts/make_bpe_fixtures.py --fixtures tests/fixtures/bpe
    python3 scripts/make_bpe_fixtures.py --parity --wattwise build/wattwise
    python3 scripts/make_bpe_fixtures.py --bench --wattwise build/wattwise
"""
import argparse
import json
import os
import random
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GPT2_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"


def hf_gpt2(tokenizer_dir):
    """tokenizers' GPT-2 tokenizer from vocab.json + merges.txt (GPT2TokenizerFast's pipeline)."""
    from tokenizers import AddedToken, Tokenizer, decoders, pre_tokenizers
    from tokenizers.models import BPE
    tok = Tokenizer(BPE.from_file(str(tokenizer_dir / "vocab.json"), str(tokenizer_dir / "merges.txt")))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True)
    tok.decoder = decoders.ByteLevel()
    if tok.token_to_id("<|endoftext|>") is not None:
        tok.add_special_tokens([AddedToken("<|endoftext|>", special=True, normalized=False)])
    return tok


def check_against_transformers(tok, tokenizer_dir, examples):
    """Same ids and type ids as transformers' GPT2TokenizerFast, when transformers is there."""
    try:
        from transformers import GPT2TokenizerFast
    except Exception:  # noqa: BLE001 - optional
        print("note: transformers not importable; GPT2TokenizerFast cross-check skipped")
        return
    fast = GPT2TokenizerFast.from_pretrained(str(tokenizer_dir)).backend_tokenizer
    fast.no_truncation()
    tok.no_truncation()
    for text, pair in examples:
        a = tok.encode(text, pair) if pair is not None else tok.encode(text)
        b = fast.encode(text, pair) if pair is not None else fast.encode(text)
        if a.ids != b.ids or a.type_ids != b.type_ids:
            sys.exit(f"reference differs from GPT2TokenizerFast on {text!r}: {a.ids} vs {b.ids}")
    print(f"reference == GPT2TokenizerFast on {len(examples)} texts")


# ---- corpora -----------------------------------------------------------------------------------

def hard_cases(seed=1234):
    """~200 texts that exercise every branch of the pattern, the byte alphabet and the merges."""
    cases = [
        "", " ", "  ", "\n", "\n\n", "\t", " \n ", "a", "A", "1", "!", "'",
        "Hello world", "Hello  world", "Hello   world", "Hello\nworld", "Hello\n\nworld",
        "Hello \nworld", "Hello\n world", "Hello \n\n world", "  leading", "trailing  ", "trailing\n",
        "tabs\t\tbetween\twords\t", "mixed \t \n \r\n spaces", "\r\n\r\n", "line\r\nbreaks\r\n",
        "it's I'm you're we've they'll he'd don't can't", "IT'S I'M YOU'RE", "'s 't 're 've 'm 'll 'd",
        "''s '''t 'x 'S 'Re", "rock'n'roll o'clock", "‘curly’ “quotes” it’s", " 's  's", "x's's'sss",
        "1 12 123 1234 12345 123456789 3.14159 1,000,000 -42 +7 1e10 0x1F",
        "² ³ ½ ¼ Ⅻ ⅷ ① ⑩ ٣ ٤٥ ६७ ๑๒ 𝟙𝟚", "year2024 abc123def 4x4 3rd 21st",
        "!!! ??? ... --- *** ((())) [[]] {{}} <<>> ||| ~~~ ``` ''' \"\"\"",
        "Hello, world! How are you? I'm fine... (really)", "a.b.c a-b-c a_b_c a/b\\c",
        "https://example.com/path?query=1&x=y#frag", "user@example.com", "C:\\Windows\\System32",
        "def f(x):\n    return x ** 2  # square\n", "if (a && b) { c = d[e]; }", "<p class=\"x\">hi</p>",
        "<|endoftext|>", "a<|endoftext|>b", "<|endoftext|><|endoftext|>", " <|endoftext|> ",
        "<|endoftext|", "|endoftext|>", "<|endoftext|>\n\nNew document", "text<|endoftext|>",
        "Café naïve résumé Ångström Crème brûlée", "e\u0301 a\u0308 o\u0302\u0323 n\u0303",
        "\u0301\u0302 leading marks", "ﬁancé ﬂuff ǅ ǈ", "Straße STRASSE ß ẞ", "İstanbul ıi",
        "日本語のテキスト", "中文文本，标点。", "한국어 텍스트", "Русский текст", "Ελληνικά",
        "עברית טקסט", "العربية النص", "हिन्दी पाठ", "ภาษาไทย", "ქართული", "Ꭰꭱꭲ", "𐌰𐌱𐌲 gothic",
        "emoji 😀😃😄 done", "👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 🇫🇷🇩🇪", "❤️ ✨ ☃ ⚡", "😀😀😀😀😀😀😀😀",
        "a😀b c 😀 d", "  😀", "😀  ", "\U0001F9D1\u200D\U0001F4BB",
        "zero\u200bwidth\u200cjoin\u200d", "\ufeffBOM at start", "soft\u00adhyphen",
        "nbsp\u00a0here", "\u00a0\u00a0x", " \u00a0x", "\u2000\u2001\u2002\u2003x", "ideo\u3000space",
        "line\u2028sep\u2029para", "next\u0085line", "fs\x1cgs\x1drs\x1eus\x1f",
        "\x00null\x01\x02\x03", "bell\x07back\x08", "del\x7f", "c1\x80\x85\x9f", "vt\x0bff\x0c",
        "private \ue000\uf8ff \U000F0000", "nonchar \ufffe\uffff \U0010FFFF", "replacement \ufffd",
        "\U0001D400\U0001D401 math bold", "\u1C89\u1C8A new letters \U00013460\U00013461 \U00016130",
        "letters" * 50, "1234567890" * 30, "!?" * 200, " " * 300, "\n" * 100, "x" + " " * 50 + "y",
        "a" + "\t \n" * 20 + "b", "A" * 500,
    ]
    # One character of every general category (and each whitespace), alone, after a space and
    # inside a word.
    samples = ["A", "a", "ǅ", "ʰ", "ª", "\u0301", "\u0903", "\u20dd", "5", "Ⅳ", "½", "_", "-", "(",
               ")", "«", "»", "!", "+", "$", "^", "©", " ", "\u2028", "\u2029", "\x01", "\xad",
               "\ue000", "\u0378", "\t", "\n", "\x0b", "\x0c", "\r", "\x85", "\xa0", "\u1680",
               "\u2000", "\u200a", "\u202f", "\u205f", "\u3000"]
    for ch in samples:
        cases += [ch + ch, " " + ch, "x" + ch + "y", "1" + ch + "2", "!" + ch + "?", ch + " a"]
    rng = random.Random(seed)
    pool = (list("abcXYZ019 \t\n'!.,-") + ["'s", "'ll", " ", "  ", "é", "中", "😀", "\u0301", "٣",
            "\xa0", "\u3000", "<|endoftext|>", "ß", "\x00", "\u2028"])
    for _ in range(40):
        cases.append("".join(rng.choice(pool) for _ in range(rng.randint(1, 40))))
    return cases


def hard_pairs():
    return [("Hello world", "second one"), ("", "only the pair"), ("only the text", ""),
            ("a<|endoftext|>", "<|endoftext|>b"), ("trailing ", " leading"), ("😀", "中文"),
            ("it's", "'s"), ("x" * 40, "y " * 40), ("1 2 3 4 5 6 7 8 9", "a b c d e f g h i j k l")]


def read_imdb(archive, limit):
    texts = []
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            if not (member.isfile() and member.name.endswith(".txt")):
                continue
            if not re.search(r"/(train|test)/(pos|neg|unsup)/", member.name):
                continue
            texts.append(tar.extractfile(member).read().decode("utf-8"))
            if len(texts) >= limit:
                break
    return texts


def read_sst2(path):
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        column = header.index("sentence")
        return [line.rstrip("\n").split("\t")[column] for line in f]


def read_shakespeare(path):
    text = Path(path).read_text(encoding="utf-8")
    paragraphs = [p + "\n" for p in text.split("\n\n") if p.strip()]
    lines = [line for line in text.split("\n") if line.strip()]
    return paragraphs, lines


def every_code_point_lines(per_line=32):
    points = [c for c in range(1, 0x110000) if not 0xD800 <= c <= 0xDFFF]
    return [" ".join(f"x{chr(c)}y {chr(c)}{chr(c)} 1{chr(c)}" for c in points[i:i + per_line])
            for i in range(0, len(points), per_line)]


# ---- fixtures ----------------------------------------------------------------------------------

def make_tiny_tokenizer(gpt2_dir, out_dir, merges_kept=1000):
    """A small slice of GPT-2 (the 256 byte tokens, its first `merges_kept` merges and
    <|endoftext|>) that can be committed, so the fixture test runs without the real data."""
    vocab = json.loads((gpt2_dir / "vocab.json").read_text(encoding="utf-8"))
    lines = (gpt2_dir / "merges.txt").read_text(encoding="utf-8").split("\n")
    merges = [l for l in lines if l and not l.startswith("#version")][:merges_kept]
    by_id = sorted(vocab.items(), key=lambda kv: kv[1])
    tiny = {token: i for i, (token, _) in enumerate(by_id[:256])}
    for merge in merges:
        left, right = merge.split(" ")
        assert left in tiny and right in tiny, merge
        tiny.setdefault(left + right, len(tiny))
    tiny["<|endoftext|>"] = len(tiny)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "vocab.json").write_text(json.dumps(tiny, ensure_ascii=False) + "\n", encoding="utf-8")
    (out_dir / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")


def fixture_rows(tok, singles, pairs, truncations):
    rows = []
    for max_length in truncations:
        if max_length:
            tok.enable_truncation(max_length)
        else:
            tok.no_truncation()
        chosen = singles if max_length == 0 else singles[::4]
        for text in chosen:
            e = tok.encode(text)
            rows.append({"text": text, "max_length": max_length, "ids": e.ids, "type_ids": e.type_ids})
        for text, pair in pairs:
            e = tok.encode(text, pair)
            rows.append({"text": text, "text_pair": pair, "max_length": max_length, "ids": e.ids,
                         "type_ids": e.type_ids})
    return rows


def write_rows(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=True) + "\n")
    print(f"wrote {len(rows)} rows ({path.stat().st_size / 1e3:.0f} kB) to {path}")


def write_fixtures(args):
    import tokenizers
    tokenizer_dir = Path(args.tokenizer)
    out = Path(args.fixtures)
    out.mkdir(parents=True, exist_ok=True)
    singles = hard_cases()
    pairs = hard_pairs()
    tok = hf_gpt2(tokenizer_dir)
    check_against_transformers(tok, tokenizer_dir, [(t, None) for t in singles] + pairs)
    write_rows(out / "hard_cases_gpt2.jsonl", fixture_rows(tok, singles, pairs, (0, 7)))
    make_tiny_tokenizer(tokenizer_dir, out / "tiny")
    tiny = hf_gpt2(out / "tiny")
    check_against_transformers(tiny, out / "tiny", [(t, None) for t in singles] + pairs)
    write_rows(out / "hard_cases_tiny.jsonl", fixture_rows(tiny, singles, pairs, (0, 5)))
    print(f"tokenizers {tokenizers.__version__}")


# ---- parity against `wattwise tokenize` ------------------------------------------------------------

def build_corpus(data, args):
    paragraphs, lines = read_shakespeare(data / "tinyshakespeare/input.txt")
    imdb = read_imdb(data / "aclImdb.tar.gz", args.imdb)
    sst = read_sst2(data / "glue/SST-2/train.tsv")[:args.sst2] + read_sst2(data / "glue/SST-2/dev.tsv")
    examples = [("shakespeare-paragraph", p, None) for p in paragraphs]
    examples += [("shakespeare-line", l, None) for l in lines[::8]]
    examples += [("imdb", t, None) for t in imdb]
    examples += [("sst2", t, None) for t in sst]
    examples += [("sst2-pair", sst[i], sst[i + 1]) for i in range(0, min(len(sst) - 1, 600), 2)]
    examples += [("imdb+shakespeare", imdb[i], paragraphs[i]) for i in range(min(200, len(imdb)))]
    examples += [("hard", t, None) for t in hard_cases()]
    examples += [("hard-pair", t, p) for t, p in hard_pairs()]
    return examples


def write_jsonl(path, examples):
    with open(path, "w", encoding="utf-8") as f:
        for _, text, pair in examples:
            row = {"text": text}
            if pair is not None:
                row["text_pair"] = pair
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def run_ours(wattwise, tokenizer, input_path, output_path, max_length):
    command = [str(wattwise), "tokenize", "--tokenizer", str(tokenizer), "--input", str(input_path),
               "--output", str(output_path)]
    if max_length:
        command += ["--max-length", str(max_length)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"wattwise tokenize failed ({result.returncode}): {result.stderr.strip()}")
    with open(output_path, encoding="utf-8") as f:
        return [json.loads(line) for line in f], result.stdout


def run_hf(tok, examples, max_length):
    if max_length:
        tok.enable_truncation(max_length)
    else:
        tok.no_truncation()
    out = [None] * len(examples)
    singles = [i for i, e in enumerate(examples) if e[2] is None]
    pairs = [i for i, e in enumerate(examples) if e[2] is not None]
    for i, e in zip(singles, tok.encode_batch([examples[i][1] for i in singles])):
        out[i] = (e.ids, None)
    for i, e in zip(pairs, tok.encode_batch([(examples[i][1], examples[i][2]) for i in pairs])):
        out[i] = (e.ids, e.type_ids)
    return out


def compare(label, examples, ours, theirs, tok, shown, limit):
    if len(ours) != len(examples):
        print(f"[{label}] wattwise wrote {len(ours)} lines for {len(examples)} examples")
        return len(examples)
    bad = 0
    for (origin, text, pair), row, (ids, type_ids) in zip(examples, ours, theirs):
        ok = row.get("input_ids") == ids and (pair is None or row.get("token_type_ids") == type_ids)
        if ok:
            continue
        bad += 1
        if shown[0] < limit:
            shown[0] += 1
            got = row.get("input_ids", [])
            k = next((i for i, (x, y) in enumerate(zip(got, ids)) if x != y), min(len(got), len(ids)))
            print(f"[{label}] MISMATCH ({origin}) text={text[:200]!r}"
                  + (f" pair={pair[:100]!r}" if pair is not None else ""))
            print(f"    at {k}: ours {got[k:k + 6]} {[tok.id_to_token(t) for t in got[k:k + 6]]}")
            print(f"           hf   {ids[k:k + 6]} {[tok.id_to_token(t) for t in ids[k:k + 6]]}")
    return bad


def parity(args):
    data = Path(args.data)
    tokenizer_dir = Path(args.tokenizer)
    started = time.time()
    examples = build_corpus(data, args)
    real = sum(1 for e in examples if not e[0].startswith("hard"))
    code_points = [("codepoints", t, None) for t in every_code_point_lines()]
    print(f"corpus: {len(examples)} examples ({real} real texts and pairs), plus "
          f"{len(code_points)} lines holding every code point; built in {time.time() - started:.1f} s")
    tok = hf_gpt2(tokenizer_dir)
    total = 0
    shown = [0]
    with tempfile.TemporaryDirectory(prefix="ww-bpe-parity-") as tmp:
        tmp = Path(tmp)
        main_input = tmp / "corpus.jsonl"
        write_jsonl(main_input, examples)
        cp_input = tmp / "codepoints.jsonl"
        write_jsonl(cp_input, code_points)
        runs = [("no truncation", 0, examples, main_input), ("max_length 64", 64, examples, main_input),
                ("max_length 1024", 1024, examples, main_input),
                ("every code point", 0, code_points, cp_input)]
        for label, max_length, corpus, path in runs:
            t0 = time.time()
            ours, _ = run_ours(args.wattwise, tokenizer_dir, path, tmp / "out.jsonl", max_length)
            t1 = time.time()
            theirs = run_hf(tok, corpus, max_length)
            t2 = time.time()
            bad = compare(label, corpus, ours, theirs, tok, shown, args.max_shown)
            total += bad
            print(f"[{label}] {len(corpus) - bad}/{len(corpus)} match "
                  f"(wattwise {t1 - t0:.1f} s, tokenizers {t2 - t1:.1f} s)")
    if total:
        print(f"FAIL: {total} mismatches")
        return 1
    print("OK: every example matches Hugging Face tokenizers exactly")
    return 0


# ---- throughput --------------------------------------------------------------------------------

def bench(args):
    data = Path(args.data)
    tokenizer_dir = Path(args.tokenizer)
    paragraphs, _ = read_shakespeare(data / "tinyshakespeare/input.txt")
    corpora = [("tinyshakespeare (paragraphs)", paragraphs),
               ("IMDB", read_imdb(data / "aclImdb.tar.gz", args.bench_texts))]
    tok = hf_gpt2(tokenizer_dir)
    tok.no_truncation()
    import tokenizers
    print(f"tokenizers {tokenizers.__version__}, {os.cpu_count()} CPUs; best of {args.repeats}")
    for name, texts in corpora:
        megabytes = sum(len(t.encode("utf-8")) for t in texts) / 1e6
        # HF's thread pool size is fixed when it first runs, so each setting runs in a fresh process.
        rates = {}
        for threads in ("1", "default"):
            env = dict(os.environ)
            if threads == "1":
                env["RAYON_NUM_THREADS"] = "1"
            with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as f:
                json.dump(texts, f)
            code = ("import json,sys,time\nsys.path.insert(0, %r)\nfrom make_bpe_fixtures import hf_gpt2\n"
                    "from pathlib import Path\ntexts=json.load(open(%r))\ntok=hf_gpt2(Path(%r))\n"
                    "best=1e9\nfor _ in range(%d):\n t=time.perf_counter(); tok.encode_batch(texts); "
                    "best=min(best,time.perf_counter()-t)\nprint(best)\n"
                    % (str(Path(__file__).parent), f.name, str(tokenizer_dir), args.repeats))
            out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
            os.unlink(f.name)
            if out.returncode != 0:
                sys.exit(out.stderr)
            rates[threads] = megabytes / float(out.stdout.strip().splitlines()[-1])
        best_ours = float("inf")
        with tempfile.TemporaryDirectory(prefix="ww-bpe-bench-") as tmp:
            path = Path(tmp) / "bench.jsonl"
            write_jsonl(path, [("", t, None) for t in texts])
            for _ in range(args.repeats):
                _, summary = run_ours(args.wattwise, tokenizer_dir, path, Path(tmp) / "out.jsonl", 0)
                m = re.search(r"encode ([0-9.]+) s", summary)
                best_ours = min(best_ours, float(m.group(1)))
        ours = megabytes / best_ours
        print(f"{name}: {len(texts)} texts, {megabytes:.2f} MB")
        print(f"  tokenizers encode_batch, 1 thread:        {rates['1']:8.2f} MB/s")
        print(f"  tokenizers encode_batch, default threads: {rates['default']:8.2f} MB/s")
        print(f"  wattwise encode, 1 thread:                {ours:8.2f} MB/s "
              f"({ours / rates['1']:.1f}x HF 1 thread, {ours / rates['default']:.1f}x HF default)")
    return 0


# ---- Unicode table -------------------------------------------------------------------------------

def unicode_table(path):
    import ctypes
    import ctypes.util
    import tokenizers
    from tokenizers import Regex
    from tokenizers.pre_tokenizers import Split
    lib = ctypes.CDLL(ctypes.util.find_library("utf8proc") or "libutf8proc.so.3")
    lib.utf8proc_category.restype = ctypes.c_int
    lib.utf8proc_version.restype = ctypes.c_char_p
    split = Split(Regex(GPT2_PATTERN), behavior="isolated")
    white_space = {0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680, 0x2028, 0x2029, 0x202F,
                   0x205F, 0x3000} | set(range(0x2000, 0x200B))

    def hf_class(ch):
        for lead, cls in (("x", "L"), ("1", "N"), ("!", "P")):
            if len(split.pre_tokenize_str(lead + ch)) == 1:
                return cls
        return "S"

    ranges = []
    for c in range(0x110000):
        if 0xD800 <= c <= 0xDFFF:
            continue
        theirs = hf_class(chr(c))
        if (theirs == "S") != (c in white_space):
            sys.exit(f"U+{c:04X}: tokenizers' \\s differs from White_Space; bpe.cpp needs updating")
        if theirs == "S":
            continue
        category = lib.utf8proc_category(c)  # 1..5 Lu..Lo, 9..11 Nd..No
        ours = "L" if 1 <= category <= 5 else ("N" if 9 <= category <= 11 else "P")
        if ours == theirs:
            continue
        if theirs == "P":
            sys.exit(f"U+{c:04X}: utf8proc says {ours}, tokenizers neither letter nor number; "
                     "bpe.cpp only knows extra letters/numbers")
        if ranges and ranges[-1][1] == c - 1 and ranges[-1][2] == theirs:
            ranges[-1][1] = c
        else:
            ranges.append([c, c, theirs])
    version = lib.utf8proc_version().decode()
    cells = [f"{{0x{a:X}, 0x{b:X}, '{k}'}}" for a, b, k in ranges]
    lines = []
    line = "   "
    for cell in cells:
        if len(line) + len(cell) + 2 > 100:
            lines.append(line)
            line = "   "
        line += " " + cell + ","
    lines.append(line)
    text = (
        "// Generated by scripts/make_bpe_fixtures.py --unicode-table; do not edit by hand.\n"
        f"// tokenizers {tokenizers.__version__} (Oniguruma's Unicode tables), utf8proc {version}.\n"
        "// Code points that GPT-2's pre-tokenizer pattern sees as \\p{L} (letter) or \\p{N} (number) while\n"
        "// utf8proc gives them another category (characters assigned after utf8proc's Unicode version).\n"
        "// Sorted, ranges inclusive.\n"
        "constexpr BpeClassRange kHfExtraLettersAndNumbers[] = {\n" + "\n".join(lines) + "\n};\n")
    Path(path).write_text(text, encoding="utf-8")
    print(f"wrote {len(ranges)} ranges to {path}")
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixtures", help="write the small fixture into this folder")
    parser.add_argument("--parity", action="store_true", help="compare `wattwise tokenize` with tokenizers")
    parser.add_argument("--bench", action="store_true", help="measure MB/s against tokenizers")
    parser.add_argument("--unicode-table", help="write the Unicode exception table (.inc) here")
    parser.add_argument("--wattwise", help="path to the wattwise binary (--parity, --bench)")
    parser.add_argument("--data", default=str(ROOT.parent / "shared/data"),
                        help="folder with aclImdb.tar.gz, glue/SST-2, tinyshakespeare and tokenizers/")
    parser.add_argument("--tokenizer", help="GPT-2 tokenizer folder (default: DATA/tokenizers/gpt2)")
    parser.add_argument("--imdb", type=int, default=2000, help="IMDB reviews in the parity corpus")
    parser.add_argument("--sst2", type=int, default=1500, help="SST-2 train sentences in the corpus")
    parser.add_argument("--max-shown", type=int, default=20, help="mismatches to print")
    parser.add_argument("--bench-texts", type=int, default=5000, help="IMDB reviews to time")
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats (best is reported)")
    args = parser.parse_args()
    if not args.tokenizer:
        args.tokenizer = str(Path(args.data) / "tokenizers/gpt2")
    if args.unicode_table:
        return unicode_table(args.unicode_table)
    if args.fixtures:
        return write_fixtures(args)
    if (args.parity or args.bench) and not args.wattwise:
        parser.error("--parity and --bench need --wattwise")
    if args.parity:
        return parity(args)
    if args.bench:
        return bench(args)
    parser.error("choose --fixtures, --parity, --bench or --unicode-table")


if __name__ == "__main__":
    sys.exit(main())
