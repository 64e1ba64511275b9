"""PriorConfig: hyperparameters as data, Hydra-friendly, validated."""

from __future__ import annotations

import pytest

from priors import PriorConfig


def test_lists_and_mappings_from_yaml_are_normalized() -> None:
    cfg = PriorConfig(n_rows=[16, 64], family_weights={"gaussian": 1}, student_t_df=[4])
    assert cfg.n_rows == (16, 64) and isinstance(cfg.n_rows, tuple)
    assert cfg.family_weights == {"gaussian": 1.0}
    omegaconf = pytest.importorskip("omegaconf")
    overrides = omegaconf.OmegaConf.create({"n_features": [2, 6], "mask_weights": {"mcar": 1.0}})
    cfg = PriorConfig(**overrides)
    assert cfg.n_features == (2, 6) and cfg.mask_weights == {"mcar": 1.0}


@pytest.mark.parametrize(
    "bad",
    [
        {"n_rows": (2, 8)},
        {"n_features": (1, 8)},
        {"n_rows": (64, 8)},
        {"max_classes": 1},
        {"student_t_df": (3,)},
        {"missing_rate": (0.0, 1.0)},
        {"mask_weights": {"mcar": 1.0, "typo": 1.0}},
        {"family_weights": {"scm": 0.0}},
    ],
)
def test_invalid_settings_are_rejected(bad: dict) -> None:
    with pytest.raises(ValueError):
        PriorConfig(**bad)
