"""Static embedding models written by Model2Vec itself (the `model2vec` package from PyPI),
for the ai service to load: `m2v`, a WordPiece tokenizer (BERT's normalizer and
pre-tokenizer, `##` continuations) over float32 vectors, and `m2v-quantized`, float16
vectors shared between tokens through a token mapping, with per-token weights (Model2Vec's
vocabulary quantization). Writes each into DIR/<name> and DIR/expected.json: sentences and
the vectors `StaticModel.encode` gives them, which the service must give too."""

import json
import sys
from pathlib import Path

import numpy as np
from model2vec import StaticModel
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

out = Path(sys.argv[1])
rng = np.random.default_rng(20261205)

words = ["refund", "refunds", "paid", "within", "five", "business", "days", "the", "car",
         "automobile", "is", "returned", "with", "a", "full", "tank", "cafe", "ole", "invoice",
         "technician", "repairs", "router", "fibre", "on", "site", "un", "deux", "."]
pieces = ["##s", "##ed", "##ing", "##er", "##ly", "##able"]
vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]"] + words + pieces)}


def tokenizer():
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return tok


sentences = [
    "Refunds are paid within five business days.",
    "The automobile is returned with a full tank",
    "Café olé, UN deux!",
    "the technician repairs the fibre router on site",
    "zzz unknown words only qqq",
    "car " * 700,
]

plain = StaticModel(vectors=rng.normal(size=(len(vocab), 48)).astype(np.float32),
                    tokenizer=tokenizer(), normalize=True)
plain.save_pretrained(out / "m2v")

rows = 12
quantized = StaticModel(
    vectors=rng.normal(size=(rows, 32)).astype(np.float16),
    tokenizer=tokenizer(),
    normalize=False,
    weights=rng.uniform(0.2, 2.0, size=len(vocab)).astype(np.float32),
    token_mapping=rng.integers(0, rows, size=len(vocab)).astype(np.int32),
)
quantized.save_pretrained(out / "m2v-quantized")

expected, tolerance = {}, {}
for name in ["m2v", "m2v-quantized"]:
    model = StaticModel.from_pretrained(str(out / name))
    vectors = model.encode(sentences)
    expected[name] = [[float(x) for x in v] for v in vectors]
    # Model2Vec averages float16 vectors in float16 (about 3 decimal digits); the service in
    # float32.
    tolerance[name] = 5e-3 if vectors.dtype == np.float16 else 1e-5
(out / "expected.json").write_text(
    json.dumps({"sentences": sentences, "vectors": expected, "tolerance": tolerance})
)
print(f"model2vec wrote {', '.join(expected)} into {out}")
