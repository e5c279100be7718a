"""PyTorch baseline for `cargo run --release --example minilm_forward`: all-MiniLM-L6-v2 with a
2-class head, the same batch (16 x 256 tokens of the same review text), timed the same way:
evaluation forwards under no_grad, then training steps (dropout on) of forward + loss + backward.

    python benches/pytorch_minilm.py [MODEL_DIR [BATCH [SEQ_LEN [STEPS [THREADS [PRECISION]]]]]]

PRECISION is f32 (PyTorch's default) or bf16: the forward (and the loss) under
`torch.autocast("cpu", dtype=torch.bfloat16)`, PyTorch's own mixed precision on the CPU
(bf16 matmuls and linear layers, f32 weights and gradients; the backward outside the
autocast region, as PyTorch recommends), the baseline for our `--precision bf16`.

Needs torch and transformers (not a project dependency; see README, "Performance").
"""
import sys
import time

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

REVIEW = (
    "This movie was absolutely wonderful: the acting is superb, the plot keeps you "
    "guessing until the very last minute, and the soundtrack is something I still hum days later. "
    "Some scenes drag a little in the middle, and one or two characters felt underwritten, but the "
    "director's eye for detail more than makes up for it. I would happily watch it again. "
)

args = sys.argv[1:]
model_dir = args[0] if len(args) > 0 else "../shared/models/all-MiniLM-L6-v2"
batch = int(args[1]) if len(args) > 1 else 16
seq_len = int(args[2]) if len(args) > 2 else 256
steps = int(args[3]) if len(args) > 3 else 3
threads = int(args[4]) if len(args) > 4 else 2
precision = args[5] if len(args) > 5 else "f32"
if precision not in ("f32", "bf16"):
    sys.exit(f"error: PRECISION must be f32 or bf16, got {precision!r}")
torch.set_num_threads(threads)
autocast = lambda: torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")

tok = AutoTokenizer.from_pretrained(model_dir)
model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=2)
long = REVIEW * (seq_len // 40 + 2)
texts = [long[(i * 7) % len(REVIEW):] for i in range(batch)]
x = tok(texts, truncation=True, max_length=seq_len, padding="max_length", return_tensors="pt")
labels = torch.tensor([i % 2 for i in range(batch)])
print(f"torch {torch.__version__}, {threads} threads, batch {tuple(x['input_ids'].shape)}, "
      f"attention {model.config._attn_implementation}, precision {precision}")

model.eval()
for i in range(max(steps, 2)):
    t0 = time.perf_counter()
    with torch.no_grad(), autocast():
        logits = model(**x).logits
    print(f"forward {i} (no_grad): {time.perf_counter() - t0:.3f} s   logits[0] = {logits[0].tolist()}")

model.train()
for step in range(steps):
    t0 = time.perf_counter()
    with autocast():
        out = model(**x, labels=labels)
    t1 = time.perf_counter()
    out.loss.backward()
    t2 = time.perf_counter()
    print(f"training step {step} (dropout on): forward {t1 - t0:.3f} s + backward {t2 - t1:.3f} s "
          f"= {t2 - t0:.3f} s   loss = {out.loss.item():.4f}")
    model.zero_grad(set_to_none=True)
