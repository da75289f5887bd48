"""The guidance lab's shipped default runs: what the page serves is what a fresh run computes."""

from __future__ import annotations

import numpy as np
import pytest

from core import zoo
from core.guidance import digits_unet, shipped


@pytest.mark.slow
def test_shipped_default_runs_equal_fresh_runs():
    denoiser, classifier = digits_unet(model=zoo.load("digits-unet")), zoo.load("digits-classifier")
    spec = {k: shipped.DEFAULT_RUNS[k] for k in ("n_samples", "steps", "seed")}
    for key, config in shipped.default_configs().items():
        tr, scores, target = shipped.load(key)
        fresh, fresh_scores, fresh_target = shipped.guided_run(denoiser, config, **spec, classifier=classifier)
        np.testing.assert_array_equal(target, fresh_target)
        np.testing.assert_allclose(tr.x, fresh.x, atol=1e-4)
        assert scores == pytest.approx(fresh_scores, abs=1e-3)


def test_an_unknown_run_is_not_shipped():
    assert shipped.load("no such run") is None


def test_every_default_run_is_shipped():
    assert all(shipped.load(key) is not None for key in shipped.default_configs())
