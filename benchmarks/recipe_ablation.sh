#!/bin/bash
# Recipe ablation at fixed compute: 300 steps (7,034 tables) of experiment=cpu_recipe per variant, two runs
# at a time on the 2-core machine; prints the last validation point of each. Usage: bash benchmarks/recipe_ablation.sh [OUT]
out=${1:-runs/ablation}
run() { name=$1; shift; python -m icl_diffusion.train experiment=cpu_recipe trainer.max_steps=300 \
  trainer.val_check_interval=300 optim.warmup_steps=30 torch_threads=1 trainer.enable_progress_bar=false \
  out_dir=$out/$name "$@" > $out/$name.log 2>&1; }
mkdir -p $out
run base & run no_gauss_feature ++model.gaussian_feature=false & wait
run no_col_embed ++model.col_embed_dim=0 & run p_tmax_0.1 loss.p_t_max=0.1 & wait
run lr_5e-4 optim.lr=5e-4 & run gauss_only ++prior.family_weights="{scm:0.0,gaussian:1.0}" & wait
for d in base no_gauss_feature no_col_embed p_tmax_0.1 lr_5e-4 gauss_only; do
  python -c "import csv; r = list(csv.DictReader(open('$out/$d/curves.csv')))[-1]; \
print('$d', *(f\"{k}={float(r[k]):.3f}\" for k in ('gaussian_ratio', 'scm_nrmse', 'real_nrmse')))"
done
