"""Loads a finetune-imdb BERT checkpoint folder in Hugging Face transformers and prints
P(positive) for each text, to compare with `finetune-imdb predict --checkpoint DIR TEXT...`.

    python bin/scripts/load_in_transformers.py CHECKPOINT_DIR ["text" ...]

Fails if transformers reports a missing or unexpected weight. Needs torch and transformers
(not project dependencies).
"""
import sys

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

ckpt = sys.argv[1]
texts = sys.argv[2:] or [
    "This movie was wonderful, I loved every minute of it.",
    "A dull, boring, terrible film. Avoid it.",
]
tok = AutoTokenizer.from_pretrained(ckpt)
model, info = AutoModelForSequenceClassification.from_pretrained(ckpt, output_loading_info=True)
bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
if bad:
    sys.exit(f"{ckpt}: transformers did not load every weight: {bad}")
model.eval()
for text in texts:
    x = tok(text, return_tensors="pt", truncation=True, max_length=model.config.max_position_embeddings)
    with torch.no_grad():
        p = torch.softmax(model(**x).logits, -1)[0, 1].item()
    print(f"{p:.4f}\t{text}")
