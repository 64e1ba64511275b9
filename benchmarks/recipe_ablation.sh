#!/bin/bash
# Recipe ablation at fixed compute: each variant of experiment=cpu_recipe trained for 300 steps (~7,000 tables)
# from scratch, validation at the end; prints the last validation point of each.
#   bash benchmarks/recipe_ablation.sh [OUT] [GROUP]    GROUP: prior_and_loss (session 1), recipe (session 2), all
# JOBS=2 (default) runs two variants at a time on the 2-core machine; JOBS=1 when a training run shares it.
out=${1:-runs/ablation}; group=${2:-all}; jobs=${JOBS:-2}
run() { name=$1; shift; [ -f $out/$name/curves.csv ] && return  # resumable: finished variants are kept
  python -m icl_diffusion.train experiment=cpu_recipe trainer.max_steps=300 trainer.val_check_interval=300 \
  optim.warmup_steps=30 torch_threads=1 trainer.enable_progress_bar=false out_dir=$out/$name "$@" > $out/$name.log 2>&1; }
# Table-size curriculum at equal steps (400): all at stage-2 sizes, or 200 small then 200 stage-2 sizes.
big="prior.n_rows=[32,256] prior.n_features=[2,20] prior.max_cells=8192"
curriculum() { run cur_big_only trainer.max_steps=400 trainer.val_check_interval=400 $big
  run cur_small200 trainer.max_steps=200 trainer.val_check_interval=200 export_path=$out/cur_small200.safetensors
  run cur_small_then_big trainer.max_steps=200 trainer.val_check_interval=200 init_from=$out/cur_small200.safetensors $big; }
variants_prior_and_loss=(
  "base_em0 ++model.gaussian_em_iters=0"
  "no_gauss_feature ++model.gaussian_feature=false"
  "no_col_embed ++model.col_embed_dim=0"
  "p_tmax_0.1 loss.p_t_max=0.1"
  "lr_5e-4 optim.lr=5e-4"
  "gauss_only ++prior.family_weights={scm:0.0,gaussian:1.0}"
)
variants_recipe=(
  "base"
  "row_isab model.row_attention=isab"
  "batch16 prior.max_batch_size=16 prior.max_cells=2048 trainer.max_steps=600 trainer.val_check_interval=600"
  "batch64 prior.max_batch_size=64 prior.max_cells=8192 trainer.max_steps=150 trainer.val_check_interval=150"
  "gauss_half ++prior.family_weights={scm:0.5,gaussian:0.5}"
  "warmup_150 optim.warmup_steps=150"
  "p_tmax_0.8 loss.p_t_max=0.8"
)
case $group in
  prior_and_loss) variants=("${variants_prior_and_loss[@]}") ;;
  recipe) variants=("${variants_recipe[@]}") ;;
  *) variants=("${variants_prior_and_loss[@]}" "${variants_recipe[@]}") ;;
esac
mkdir -p $out
for v in "${variants[@]}"; do
  run $v &
  while [ $(jobs -r | wc -l) -ge $jobs ]; do wait -n; done
done
[ $group != prior_and_loss ] && curriculum
wait
for f in $out/*/curves.csv; do d=$(basename $(dirname $f))
  python -c "import csv; r = list(csv.DictReader(open('$f')))[-1]; \
print('$d', *(f\"{k}={float(r[k]):.3f}\" for k in ('gaussian_ratio', 'scm_nrmse', 'real_nrmse', 'minutes', 'tables_seen')))"
done
