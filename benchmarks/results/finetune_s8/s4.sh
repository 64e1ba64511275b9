export PATH=/work/main/.venv/bin:$PATH OMP_NUM_THREADS=1
cd /work/main
INF='"lr": 3e-4, "point_inputs": true, "mask_kinds": ["mcar"], "p_t_max": 1.0, "p_uncond": 0.0, "min_features": 20, "rows": [128, 256], "batch_size": 4'
nice python benchmarks/results/finetune_s8/forget.py $1 75 "{$INF $2}" 2>&1 | grep "^\[" >> runs/ft8/forget.log
