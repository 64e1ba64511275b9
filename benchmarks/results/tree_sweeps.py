"""Experiment (session 29): the blend's trees refitted in sweeps (``tree_regression.TREES``), their split candidates
(``tree_regression.MAX_FEATURES``) and where the blend's weights are chosen (``inference.WEIGHTS_ON_KEYS``).

    python benchmarks/results/tree_sweeps.py TREES FEATURES ON_KEYS screen SCREEN_ARGS...
    python benchmarks/results/tree_sweeps.py cost      # seconds: session 28's trees vs session 29's, alternating
    python benchmarks/results/tree_sweeps.py guns      # the numbers of test_shipped_quality's AER/Guns test

TREES: trees per forest, one per sweep, comma-separated (session 28: 30; session 29: 10,10,30); FEATURES: split
candidates a node, an integer (at most that many; 16 in sessions 27-29) or ``sqrt`` (tried in session 29, not kept;
``cost`` prints it as "session 29", the adopted engine as "session 29, every feature"); ON_KEYS: 1 to choose the
blend's weights on the key rows alone (sessions 17-28), 0 on the rows the trees learn from (session 29). SCREEN_ARGS:
``benchmarks/screen.py``'s, e.g. ``t10_10_30=checkpoints/icl_diffusion_small.safetensors --sections grid --out-dir
runs/screen``. Run from the repository root; benchmarks/results/imputation.md, session 29, has the runs.
"""

import sys

sys.path.insert(0, "benchmarks/results")
sys.path.insert(0, "benchmarks")

from icl_diffusion import inference, tree_regression


def patch(trees: str, features: str, on_keys: str):
    """A function that sets the engine to these settings (``em_iters.alternate``'s variants)."""

    def set_engine() -> None:
        tree_regression.TREES = tuple(int(t) for t in trees.split(","))
        tree_regression.MAX_FEATURES = features if features == "sqrt" else int(features)
        inference.WEIGHTS_ON_KEYS = on_keys == "1"

    return set_engine


if __name__ == "__main__":
    if sys.argv[1] == "cost":
        import em_iters
        import torch

        torch.set_num_threads(1)
        em_iters.alternate({"session 28": patch("30", "16", "1"), "session 29, every feature": patch("10,10,30", "16", "0"),
                            "session 29": patch("10,10,30", "sqrt", "0")})
    elif sys.argv[1] == "guns":
        import torch

        sys.path.insert(0, "tests")
        from test_shipped_quality import _mcar_nrmse, _numeric_table

        from icl_diffusion import load_pretrained

        torch.set_num_threads(1)
        shipped, x = load_pretrained(), _numeric_table("AER", "Guns")
        print("shipped engine", round(_mcar_nrmse(shipped, x, 0.3), 3), flush=True)
        tree_regression.TREES = tree_regression.TREES[-1:]
        print("one sweep", round(_mcar_nrmse(shipped, x, 0.3), 3), flush=True)
        tree_regression.MAX_ROWS = 0
        print("one sweep, on the key rows", round(_mcar_nrmse(shipped, x, 0.3), 3), flush=True)
        inference.ENGINE_INPUTS = tuple(i for i in inference.ENGINE_INPUTS if i != "trees")
        print("without the trees", round(_mcar_nrmse(shipped, x, 0.3), 3), flush=True)
    else:
        trees, features, on_keys, mode, *rest = sys.argv[1:]
        assert mode == "screen", mode
        patch(trees, features, on_keys)()
        import screen

        sys.argv = ["screen.py", *rest]
        screen.main()
