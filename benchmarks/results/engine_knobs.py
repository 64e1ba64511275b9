"""The engine's module constants set from the command line, then the screen or the cost run (session 30; the same
as tree_sweeps.py and em_iters.py, for any constant).

    python benchmarks/results/engine_knobs.py KNOB=VALUE ... screen SCREEN_ARGS...
    python benchmarks/results/engine_knobs.py cost [--threads N] "LABEL:KNOB=VALUE,KNOB=VALUE" "LABEL:..."
    python benchmarks/results/engine_knobs.py KNOB=VALUE ... -- SCRIPT ARGS...   # any benchmark, e.g. draws_speed.py

KNOB: ``module.NAME`` of the ``icl_diffusion`` package (``inference.INPUT_GAIN_SE``, ``inference.LEVEL_MIN_GAIN``,
``tree_regression.TREES``), VALUE a Python literal. ``screen``: ``benchmarks/screen.py``'s arguments, e.g.
``se2=checkpoints/icl_diffusion_small.safetensors --sections grid,gaussian --out-dir runs/screen``. ``cost``: seconds
per point estimate of each labelled setting, alternating on 7 tables x 9 masks (``em_iters.alternate``), on one torch
thread unless ``--threads`` says more; an empty setting (``"LABEL:"``) is the shipped engine. Run from the
repository root.
"""

import ast
import importlib
import sys

sys.path.insert(0, "benchmarks/results")
sys.path.insert(0, "benchmarks")


SHIPPED = {}  # (module, name) -> the shipped value of every constant any setter changed


def setter(assignments: list[str]):
    """A function that sets each ``module.NAME=VALUE`` of ``assignments``, every other constant a setter changed back
    to its shipped value."""

    def set_engine() -> None:
        for (module, name), value in SHIPPED.items():
            setattr(module, name, value)
        for item in assignments:
            key, value = item.split("=", 1)
            module_name, name = key.rsplit(".", 1)
            module = importlib.import_module(f"icl_diffusion.{module_name}")
            if not hasattr(module, name):
                raise SystemExit(f"icl_diffusion.{module_name} has no {name}")
            SHIPPED.setdefault((module, name), getattr(module, name))
            setattr(module, name, ast.literal_eval(value))

    return set_engine


if __name__ == "__main__":
    if "cost" in sys.argv[1:2]:
        import em_iters
        import torch

        specs = sys.argv[2:]
        threads = 1
        if specs[0] == "--threads":  # the threads every variant runs on (default one)
            threads, specs = int(specs[1]), specs[2:]
        torch.set_num_threads(threads)
        variants = {}
        for spec in specs:
            label, _, knobs = spec.partition(":")
            variants[label] = setter([k for k in knobs.split(",") if k])
        em_iters.alternate(variants)
    elif "screen" in sys.argv:
        mode = sys.argv.index("screen")
        setter(sys.argv[1:mode])()
        import screen

        sys.argv = ["screen.py", *sys.argv[mode + 1:]]
        screen.main()
    else:  # KNOBS... -- SCRIPT ARGS...: any benchmark script run with the knobs set
        import runpy

        mode = sys.argv.index("--")
        setter(sys.argv[1:mode])()
        sys.argv = sys.argv[mode + 1:]
        runpy.run_path(sys.argv[0], run_name="__main__")
