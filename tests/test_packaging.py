"""A non-editable install (a wheel) carries the shipped checkpoint and the Hydra configs as package data."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_carries_checkpoint_and_configs(tmp_path):
    # --no-build-isolation: setuptools from the test environment, nothing downloaded.
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path), str(ROOT)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        z.extractall(site)
    assert "icl_diffusion/_checkpoints/icl_diffusion_small.safetensors" in names
    for conf in ("config.yaml", "experiment/cpu_recipe.yaml", "model/small.yaml", "trainer/gpu.yaml"):
        assert f"icl_diffusion/_conf/{conf}" in names
    code = ("import icl_diffusion, icl_diffusion.checkpoint as c, icl_diffusion.train as t; "
            "print(icl_diffusion.__file__, c.DEFAULT_CHECKPOINT, t.CONF_DIR, c.load_pretrained().model.num_parameters(), "
            "t.compose(['experiment=cpu_recipe']).trainer.max_steps)")
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, check=True, capture_output=True,
                         text=True).stdout.split()
    assert all(p.startswith(str(site)) for p in out[:3]), out  # the wheel's copy, not the source tree
    assert int(out[3]) > 0 and out[4] == "3000"
