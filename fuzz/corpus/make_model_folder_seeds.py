#!/usr/bin/env python3
"""Writes the seeds of fuzz_model_folder (fuzz/corpus/model_folder/): tiny but consistent model
folders (BERT, DistilBERT, GPT-2 configs with a matching safetensors checkpoint and a tokenizer,
as tokenizer.json or vocab.txt), packed as u32 config length, u32 tokenizer length, config,
tokenizer, safetensors. Run from anywhere: python3 fuzz/corpus/make_model_folder_seeds.py"""
import json
import os
import struct

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "model_folder")


def safetensors(tensors):
    """tensors: [(name, shape)] of f32 zeros-and-ones; returns the file's bytes."""
    header, data = {}, b""
    for name, shape in tensors:
        n = 1
        for d in shape:
            n *= d
        values = struct.pack("<%df" % n, *[(i % 3) * 0.5 for i in range(n)])
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [len(data), len(data) + len(values)]}
        data += values
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def bert_tensors(prefix, C, I, V, P, L, types, labels, distil):
    t = [(prefix + "embeddings.word_embeddings.weight", [V, C]),
         (prefix + "embeddings.position_embeddings.weight", [P, C])]
    if types:
        t.append((prefix + "embeddings.token_type_embeddings.weight", [types, C]))
    t += [(prefix + "embeddings.LayerNorm.weight", [C]), (prefix + "embeddings.LayerNorm.bias", [C])]
    for l in range(L):
        b = prefix + ("transformer.layer.%d." % l if distil else "encoder.layer.%d." % l)
        for n in ("q_lin", "k_lin", "v_lin", "out_lin") if distil else (
                "attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
            name = b + ("attention." + n if distil else n)
            t += [(name + ".weight", [C, C]), (name + ".bias", [C])]
        ln1 = b + ("sa_layer_norm" if distil else "attention.output.LayerNorm")
        t += [(ln1 + ".weight", [C]), (ln1 + ".bias", [C])]
        fin = b + ("ffn.lin1" if distil else "intermediate.dense")
        fout = b + ("ffn.lin2" if distil else "output.dense")
        t += [(fin + ".weight", [I, C]), (fin + ".bias", [I]), (fout + ".weight", [C, I]), (fout + ".bias", [C])]
        ln2 = b + ("output_layer_norm" if distil else "output.LayerNorm")
        t += [(ln2 + ".weight", [C]), (ln2 + ".bias", [C])]
    head = "pre_classifier" if distil else prefix + "pooler.dense"
    t += [(head + ".weight", [C, C]), (head + ".bias", [C]),
          ("classifier.weight", [labels, C]), ("classifier.bias", [labels])]
    return t


def gpt2_tensors(C, V, P, L):
    t = [("transformer.wte.weight", [V, C]), ("transformer.wpe.weight", [P, C])]
    for l in range(L):
        b = "transformer.h.%d." % l
        t += [(b + "ln_1.weight", [C]), (b + "ln_1.bias", [C]), (b + "attn.c_attn.weight", [C, 3 * C]),
              (b + "attn.c_attn.bias", [3 * C]), (b + "attn.c_proj.weight", [C, C]), (b + "attn.c_proj.bias", [C]),
              (b + "ln_2.weight", [C]), (b + "ln_2.bias", [C]), (b + "mlp.c_fc.weight", [C, 4 * C]),
              (b + "mlp.c_fc.bias", [4 * C]), (b + "mlp.c_proj.weight", [4 * C, C]), (b + "mlp.c_proj.bias", [C])]
    return t + [("transformer.ln_f.weight", [C]), ("transformer.ln_f.bias", [C])]


WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "##s", ",", "!", "a", "pair"]
VOCAB_TXT = ("\n".join(WORDS) + "\n").encode()
WORDPIECE_JSON = json.dumps({
    "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
              "max_input_chars_per_word": 100, "vocab": {w: i for i, w in enumerate(WORDS)}},
    "normalizer": {"type": "BertNormalizer", "lowercase": True},
    "pre_tokenizer": {"type": "BertPreTokenizer"},
    "added_tokens": [{"id": 0, "content": "[PAD]", "special": True}]}).encode()
BPE_JSON = json.dumps({
    "model": {"type": "BPE", "vocab": {"H": 0, "e": 1, "l": 2, "o": 3, "He": 4, "ll": 5, "Ġ": 6},
              "merges": ["H e", "l l"]},
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False}}).encode()


def pack(config, tokenizer, weights):
    config = json.dumps(config).encode()
    return struct.pack("<II", len(config), len(tokenizer)) + config + tokenizer + weights


def main():
    os.makedirs(HERE, exist_ok=True)
    C, I, V, P, L = 4, 8, len(WORDS), 8, 1
    bert = {"model_type": "bert", "vocab_size": V, "hidden_size": C, "num_hidden_layers": L,
            "num_attention_heads": 2, "intermediate_size": I, "max_position_embeddings": P, "num_labels": 2}
    distil = {"model_type": "distilbert", "vocab_size": V, "dim": C, "n_layers": L, "n_heads": 2,
              "hidden_dim": I, "max_position_embeddings": P, "num_labels": 3}
    gpt2 = {"model_type": "gpt2", "vocab_size": 7, "n_embd": C, "n_layer": L, "n_head": 2, "n_positions": P,
            "bos_token_id": 0, "eos_token_id": 0}
    seeds = {
        "bert_vocab_txt": pack(bert, VOCAB_TXT, safetensors(bert_tensors("bert.", C, I, V, P, L, 2, 2, False))),
        "bert_tokenizer_json": pack(bert, WORDPIECE_JSON, safetensors(bert_tensors("bert.", C, I, V, P, L, 2, 2, False))),
        "distilbert": pack(distil, WORDPIECE_JSON, safetensors(bert_tensors("distilbert.", C, I, V, P, L, 0, 3, True))),
        "gpt2": pack(gpt2, BPE_JSON, safetensors(gpt2_tensors(C, 7, P, L))),
        "config_larger_than_checkpoint": pack(dict(bert, num_hidden_layers=1000), VOCAB_TXT,
                                              safetensors(bert_tensors("bert.", C, I, V, P, L, 2, 2, False))),
    }
    for name, data in seeds.items():
        with open(os.path.join(HERE, name), "wb") as f:
            f.write(data)
        print(name, len(data), "bytes")


if __name__ == "__main__":
    main()
