"""Average the weights of inference checkpoints of one architecture (a model soup / SWA): soup.py OUT IN..."""
import sys

from icl_diffusion import load_checkpoint
from icl_diffusion.checkpoint import save_checkpoint

out, paths = sys.argv[1], sys.argv[2:]
ps = [load_checkpoint(p) for p in paths]
sd = {k: sum(p.model.state_dict()[k].float() for p in ps) / len(ps) for k in ps[0].model.state_dict()}
ps[0].model.load_state_dict(sd)
info = {**ps[0].info, "soup_of": paths}
save_checkpoint(out, ps[0].model, ps[0].diffusion, info, sampler=ps[0].sampler)
print("wrote", out)
