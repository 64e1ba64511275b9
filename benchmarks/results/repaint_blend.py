"""Prototype (issue 14, session 32; not adopted): RePaint whose denoiser is the network blended with the exact
noisy-table Gaussian denoiser (``baselines.noisy_gaussian``) at every step, the weight of the Gaussian's x0
estimate fitted by least squares to the known cells' denoising error at that step (RePaint re-noises them, so the
network reads them as it reads the others). Modes: net, gauss (either alone), blend_global (one weight a step),
blend_col (one per column a step). Whole Boston / Auto (at most ROWS rows), 20% MCAR, 10 draws, seed 0.

    python benchmarks/results/repaint_blend.py ROWS 10-1-1 net,gauss,blend_global,blend_col LABEL=CKPT ...
"""

import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.common import load_real_table, make_mask
from benchmarks.draws import score
from icl_diffusion import load_checkpoint
from icl_diffusion.baselines import noisy_gaussian
from icl_diffusion.inference import CLIP, TableDenoiser, choose_key_rows
from icl_diffusion.sampling import sample

DRAWS = 10


def blended(net, gauss, mode, x0, known, weights):
    """The denoiser callable of ``mode``; ``weights`` collects the Gaussian's mean weight at each call."""
    def denoise(x_t, t, flags):
        if mode == "net":
            return net(x_t, t, flags)
        out_g = gauss(x_t, t, flags)
        if mode == "gauss":
            return out_g
        out_n = net(x_t, t, flags)
        n, d = out_n[0].double(), out_g[0].double() - out_n[0].double()
        r = x0.double() - n
        axes = (0, 1, 2) if mode == "blend_global" else (0, 1)
        w = ((r * d * known).sum(axes) / (d * d * known).sum(axes).clamp(min=1e-12)).clamp(0, 1)
        weights.append(float(w.mean()))
        return ((n + w * d).float(), *out_n[1:])
    return denoise


def main():
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    rows, settings, modes = int(sys.argv[1]), sys.argv[2].split(","), sys.argv[3].split(",")
    for arg in sys.argv[4:]:
        label, path = arg.split("=")
        pre = load_checkpoint(path)
        gau = noisy_gaussian(pre)
        for name in ("boston", "auto"):
            table = load_real_table(name, max_rows=rows, seed=0)
            missing = make_mask(table.x, "mcar", 0.2, np.random.default_rng(0))
            x = torch.as_tensor(np.where(missing, 0.0, table.x), dtype=torch.float32)
            known = torch.as_tensor(~missing)
            is_cat = torch.zeros(x.shape[1], dtype=torch.bool)
            n_classes = torch.zeros(x.shape[1], dtype=torch.long)
            keys = choose_key_rows(known, pre.sampler.max_context_rows, torch.Generator().manual_seed(0))
            x0, flags = x[None].expand(DRAWS, -1, -1).contiguous(), known[None].expand(DRAWS, -1, -1)
            for setting in settings:
                steps, length, n_sample = map(int, setting.split("-"))
                for mode in modes:
                    net = TableDenoiser(pre.model.eval(), is_cat[None], n_classes[None], keys, 2048, False)
                    gauss = TableDenoiser(gau.model.eval(), is_cat[None], n_classes[None], keys, 2048, False)
                    weights, start = [], time.time()
                    with torch.no_grad():
                        out = sample(blended(net, gauss, mode, x0, flags, weights), pre.diffusion, x0, flags,
                                     method="repaint", n_steps=steps, jump_length=length, jump_n_sample=n_sample,
                                     generator=torch.Generator().manual_seed(1), is_cat=is_cat[None, None, :],
                                     clip=CLIP, variance_mix=pre.sampler.variance_mix)
                    s = score(out.numpy(), table.x, missing, table)
                    w = (f" Gaussian weight first / middle / last call {weights[0]:.2f} / "
                         f"{weights[len(weights) // 2]:.2f} / {weights[-1]:.2f}" if weights else "")
                    print(f"{label} {name}({len(x)}) {setting} {mode}: 1draw {s['NRMSE 1 draw']:.3f} "
                          f"mean {s['NRMSE mean']:.3f} crps {s['CRPS']:.3f} {time.time() - start:.0f}s{w}", flush=True)


if __name__ == "__main__":
    main()
