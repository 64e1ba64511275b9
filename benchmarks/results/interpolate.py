"""Interpolate two inference checkpoints: interpolate.py OUT ALPHA A B writes A + ALPHA (B - A) (weights), with B's
architecture and A's stored sampler settings; a tensor A lacks (an input B added, zero-initialized when B was
trained from A) is ALPHA times B's. Session 12: A = stage 5b, B = stage 11, ALPHA = 0.5 (model card, stage 15)."""
import sys

from icl_diffusion import load_checkpoint
from icl_diffusion.checkpoint import save_checkpoint

out, alpha, a, b = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
pa, pb = load_checkpoint(a), load_checkpoint(b)
sa, sb = pa.model.state_dict(), pb.model.state_dict()
missing = [k for k in sb if k not in sa or sa[k].shape != sb[k].shape]
print("not in A (scaled by ALPHA):", missing)
sd = {k: alpha * sb[k] if k in missing else sa[k] + alpha * (sb[k] - sa[k]) for k in sb}
pb.model.load_state_dict(sd)
save_checkpoint(out, pb.model, pb.diffusion, {**pb.info, "interpolated": [a, b, alpha]}, sampler=pa.sampler)
print("wrote", out)
