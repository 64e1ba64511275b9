#!/bin/bash
# Categorical head start, ablated at fixed compute: each variant continues the same weights (the stage-4
# checkpoint, the last one without the categorical path) for 300 steps of experiment=cpu_recipe_phase5,
# validation at the end (scm_cat_acc: accuracy on masked categorical cells of SCM tables; real_nrmse).
#   bash benchmarks/categorical_ablation.sh INIT.safetensors [OUT]
# Sequential (one thread): it shares the machine with a training run.
init=${1:?usage: categorical_ablation.sh INIT.safetensors [OUT]}; out=${2:-runs/cat_ablation}
mkdir -p $out
run() { name=$1; shift; [ -f $out/$name/curves.csv ] && return  # resumable: finished variants are kept
  python -m icl_diffusion.train experiment=cpu_recipe_phase5 init_from=$init trainer.max_steps=300 \
  trainer.val_check_interval=300 optim.warmup_steps=30 trainer.enable_progress_bar=false \
  export_path=$out/$name.safetensors out_dir=$out/$name "$@" > $out/$name.log 2>&1; }
run full
run no_categorical_feature init_overrides.categorical_feature=false
run no_multinomial_prior prior.p_multinomial=0.0
for v in full no_categorical_feature no_multinomial_prior; do
  echo "$v: $(tail -1 $out/$v/curves.csv)"
done
echo "columns: $(head -1 $out/full/curves.csv)"
