"""PyTorch baseline for `cargo run --release --example bilstm_step`: the tutorial's BiLSTM
classifier (embedding 50, hidden 256, 2 layers, bidirectional, dropout 0.5, batch 64, random
lengths 200-260, f32), one training step = forward + loss + backward, timed the same way.

    python benches/pytorch_bilstm.py [--steps N] [--threads T] [--packed-steps P]

`padded` runs the LSTM over the padded batch, ignoring lengths (not the tutorial's semantics:
the backward direction starts on padding); `packed` uses pack_padded_sequence as the tutorial
does (the semantics tapegrad implements). Needs torch (not a project dependency).
"""
import argparse
import time

import torch
from torch import nn

ap = argparse.ArgumentParser()
ap.add_argument("--steps", type=int, default=3)
ap.add_argument("--packed-steps", type=int, default=1)
ap.add_argument("--threads", type=int, default=2)
a = ap.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
VOCAB, EMB, HID, BATCH, PAD = 25_002, 50, 256, 64, 1


class BiLstm(nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(VOCAB, EMB, padding_idx=PAD)
        self.rnn = nn.LSTM(EMB, HID, num_layers=2, bidirectional=True, dropout=0.5)
        self.fc = nn.Linear(2 * HID, 1)
        self.dropout = nn.Dropout(0.5)

    def forward(self, text, lengths, packed):
        x = self.dropout(self.embedding(text))  # (T, B, E)
        if packed:
            x = nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
        _, (h, _) = self.rnn(x)
        return self.fc(self.dropout(torch.cat((h[-2], h[-1]), dim=1)))


model = BiLstm().train()
loss_fn = nn.BCEWithLogitsLoss()
print(f"torch {torch.__version__}, {a.threads} threads, batch {BATCH}, lengths 200-260")
for mode, steps in (("padded", a.steps), ("packed", a.packed_steps)):
    for step in range(steps):
        lengths = torch.randint(200, 261, (BATCH,))
        t = int(lengths.max())
        text = torch.full((t, BATCH), PAD, dtype=torch.long)
        for i, n in enumerate(lengths.tolist()):
            text[:n, i] = torch.randint(2, VOCAB, (n,))
        labels = torch.randint(0, 2, (BATCH, 1)).float()
        t0 = time.perf_counter()
        loss = loss_fn(model(text, lengths, mode == "packed"), labels)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        model.zero_grad(set_to_none=True)
        print(f"{mode} step {step}: forward {(t1 - t0) * 1e3:.0f} ms, backward {(t2 - t1) * 1e3:.0f} ms, "
              f"total {(t2 - t0) * 1e3:.0f} ms, {int(lengths.sum())} tokens")
