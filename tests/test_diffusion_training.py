"""Reference behaviours of the diffusion-training lab (notes: guidance_steering_and_training.md §4–6).

Toy recipes on the exact 8-mode mixture, fixed seeds; every number is compared with the exact teacher.
"""

from __future__ import annotations

import math
from functools import partial

import pytest
import torch

from core.diffusion_training import EDMMLP, TrainConfig, run, sampling
from core.diffusion_training import regression as R
from core.errors import OptiscopeError
from core.guidance import GaussianMixtureDenoiser
from core.runs import last_state

N_EVAL = 2000
STAGE1 = {"config": TrainConfig(lr=5e-3), "steps": 3000}  # width 64: ~20 s of CPU for the note's 5000 × 128
STAGE2 = {"config": TrainConfig(objective="progressive", lr=5e-4), "steps": 600}  # per halving, 32 → 4
BASE = {"config": TrainConfig(objective="dsm"), "steps": 1500}  # the note's imperfect 64-wide base
NPO_STEPS = 500


@pytest.fixture(scope="module")
def mixture() -> GaussianMixtureDenoiser:
    return GaussianMixtureDenoiser()


@pytest.fixture(scope="module")
def stage1(mixture) -> EDMMLP:
    return last_state(run(EDMMLP(width=64, w_range=(1.0, 5.0)), mixture, **STAGE1, every=3000)).model


@pytest.fixture(scope="module")
def base(mixture) -> EDMMLP:
    return last_state(run(EDMMLP(width=64), mixture, **BASE, every=1500)).model


def _eval_start() -> tuple[torch.Tensor, torch.Tensor]:
    return sampling.start_noise(N_EVAL, 1, torch.device("cpu")), torch.arange(N_EVAL) % 8


def radius(predict, levels: torch.Tensor) -> float:
    x, labels = _eval_start()
    return sampling.scores(sampling.euler(predict(labels), x, levels), GaussianMixtureDenoiser(), labels)["radius"]


def teacher_radius(mixture, w: float) -> float:
    return radius(partial(sampling.exact_cfg, mixture, w=w), sampling.grid(32))


def test_exact_teacher_reproduces_the_notes_cfg_radii(mixture) -> None:
    got = [teacher_radius(mixture, w) for w in (1, 3, 5)]
    assert got == pytest.approx([1.991, 2.241, 2.382], abs=0.01)


@pytest.mark.slow
def test_stage1_student_matches_the_teachers_radius_at_every_w(mixture, stage1) -> None:
    for w in (1.0, 2.0, 3.0, 5.0):
        student = radius(partial(sampling.student, stage1, w=w), sampling.grid(32))
        assert abs(student - teacher_radius(mixture, w)) <= 0.03, (w, student)


@pytest.mark.slow
def test_progressive_distillation_keeps_the_teachers_radius_in_4_steps(mixture, stage1) -> None:
    states = list(run(stage1, mixture, **STAGE2, every=600))
    assert [s.sampler_steps for s in states] == [16, 8, 4]
    four = sampling.grid(32)[::8]
    for w in (3.0, 5.0):
        distilled = radius(partial(sampling.student, states[-1].model, w=w), four)
        assert abs(distilled - teacher_radius(mixture, w)) <= 0.03, (w, distilled)
    naive = radius(partial(sampling.student, stage1, w=3.0), four)  # the stage-1 student in 4 Euler steps
    assert abs(naive - teacher_radius(mixture, 3.0)) > 0.15, naive  # notes §4(e): measured 0.22


def _null_rms(base: EDMMLP, negative: EDMMLP, mixture, sigma: float) -> float:
    gen = torch.Generator().manual_seed(5)
    idx = torch.randint(0, 8, (1000,), generator=gen)
    x = mixture.means.float()[idx] + (mixture.std**2 + sigma**2) ** 0.5 * torch.randn((1000, 2), generator=gen)
    null = torch.full((1000,), 8)
    with torch.no_grad():
        return (negative(x, sigma, null) - base(x, sigma, null)).square().sum(1).mean().sqrt().item()


@pytest.mark.slow
def test_self_npo_minus_one_stays_close_to_the_base(mixture, base) -> None:
    config = TrainConfig(objective="self_npo", lr=1e-3, w_neg=-1.0)
    negative = last_state(run(base, mixture, config=config, steps=NPO_STEPS, every=NPO_STEPS)).model
    for sigma in (5.0, 1.0, 0.3):
        assert _null_rms(base, negative, mixture, sigma) <= 0.25, sigma
    for w in (2.0, 3.0, 5.0):
        plain = radius(partial(sampling.model_cfg, base, w=w), sampling.grid(32))
        npo = radius(partial(sampling.model_cfg, base, w=w, negative=negative), sampling.grid(32))
        assert abs(npo - plain) <= 0.04, (w, plain, npo)


@pytest.fixture(scope="module")
def score_problem(mixture) -> R.ScoreProblem:
    return R.make_problem(mixture, sigma=0.5, n_samples=200, n_test=1000, seed=0)


def test_score_problem_has_the_notes_noise_floor(score_problem) -> None:
    assert score_problem.label_noise == pytest.approx(0.268, abs=0.01)
    assert score_problem.test_truth.square().sum(1).mean().item() == pytest.approx(3.80, abs=0.05)


def test_wide_network_tracks_its_ntk_and_early_stopping_beats_the_interpolant(score_problem) -> None:
    states = list(R.regress(score_problem, width=2048, steps=300, every=10))
    assert max(s.gap for s in states) <= 0.03
    assert states[-1].test_error == pytest.approx(states[-1].kernel_error, rel=0.1)
    rows = R.kernel_curve(score_problem, [10, 30, 100, 300, 1000, 3000, math.inf], width=2048)
    best, interpolant = min(r["test_error"] for r in rows[:-1]), rows[-1]["test_error"]
    assert 0.04 <= best <= 0.07
    assert interpolant >= 5 * best
    assert rows[-1]["train_mse"] < 1e-6  # the interpolant fits the noisy labels exactly


def test_empirical_ntk_by_torch_func_matches_the_closed_form_jacobian() -> None:
    model = R.TwoLayer(64, seed=0, device=torch.device("cpu"))
    x = torch.randn(5, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    u = torch.cat([x / 2, torch.ones(5, 1, dtype=torch.float64)], 1)
    active = (u @ model.w.detach().T > 0).double()  # (n, m)
    a = model.a  # (m, 2): a_r / √m
    by_hand = torch.einsum("im,jm,mk,ml,ij->ikjl", active, active, a, a, u @ u.T).reshape(10, 10)
    assert torch.allclose(R.empirical_ntk(model, x, x), by_hand, atol=1e-12)


def test_infinite_width_ntk_is_the_limit_of_the_empirical_one(score_problem) -> None:
    x = score_problem.inputs[:20]
    wide = R.empirical_ntk(R.TwoLayer(8192, seed=0, device=x.device), x, x)
    limit = R.infinite_ntk(x, x)
    assert (wide - limit).norm() / limit.norm() < 0.05


def test_run_validates_before_the_first_step(mixture) -> None:
    plain, student = EDMMLP(width=8), EDMMLP(width=8, w_range=(1.0, 5.0))
    with pytest.raises(OptiscopeError, match="w-conditioned"):
        run(plain, mixture)  # "guided" needs w
    with pytest.raises(OptiscopeError, match="sample_w"):
        run(student, mixture, sample_w=7.5)  # the student cannot extrapolate past its w_range
    with pytest.raises(OptiscopeError, match="budget"):
        run(EDMMLP(width=1024, w_range=(1.0, 5.0)), mixture, steps=100_000)
    with pytest.raises(OptiscopeError, match="power of 2"):
        TrainConfig(objective="progressive", teacher_steps=32, student_steps=3)
    with pytest.raises(OptiscopeError, match="objective"):
        TrainConfig(objective="nonsense")
    with pytest.raises(OptiscopeError, match="width"):
        EDMMLP(width=0)
    problem = R.make_problem(mixture, n_samples=10, n_test=10)
    with pytest.raises(OptiscopeError, match="even"):
        R.regress(problem, width=63)
    with pytest.raises(OptiscopeError, match="budget"):
        R.regress(problem, width=8192, steps=1_000_000)


def test_states_are_frozen_and_detached_and_the_input_model_is_untouched(mixture) -> None:
    student = EDMMLP(width=8, w_range=(1.0, 5.0))
    before = {k: v.clone() for k, v in student.state_dict().items()}
    states = list(run(student, mixture, steps=4, every=2, n_samples=16))
    assert [s.step for s in states] == [2, 4]
    assert states[0].samples.shape == (16, 2) and not states[0].samples.requires_grad
    assert all(torch.equal(before[k], v) for k, v in student.state_dict().items())
    assert not torch.equal(states[0].model.body[0].weight, states[1].model.body[0].weight)
    with pytest.raises(AttributeError):
        states[0].loss = 0.0


def test_same_seed_same_run(mixture) -> None:
    dsm = TrainConfig(objective="dsm")
    losses = lambda seed: [s.loss for s in run(EDMMLP(width=8, seed=seed), mixture, config=dsm, steps=3, seed=seed)]  # noqa: E731
    assert losses(0) == losses(0)
    assert losses(0) != losses(1)


@pytest.mark.gpu
def test_training_and_regression_on_cuda_match_the_cpu(cuda) -> None:
    cpu_mixture, gpu_mixture = GaussianMixtureDenoiser(), GaussianMixtureDenoiser(device=cuda)
    torch.manual_seed(0)
    student = EDMMLP(width=32, w_range=(1.0, 5.0))
    on_cpu = [s.loss for s in run(student, cpu_mixture, steps=20)]
    on_gpu = [s.loss for s in run(student, gpu_mixture, steps=20)]
    assert on_gpu == pytest.approx(on_cpu, rel=1e-3)  # float32 matmuls differ in the last bits
    problem_cpu = R.make_problem(cpu_mixture, n_samples=50, n_test=50)
    problem_gpu = R.make_problem(gpu_mixture, n_samples=50, n_test=50)
    a = last_state(R.regress(problem_cpu, width=256, steps=50))
    b = last_state(R.regress(problem_gpu, width=256, steps=50))
    assert b.test_error == pytest.approx(a.test_error, rel=1e-6)
    assert b.gap == pytest.approx(a.gap, rel=1e-4, abs=1e-9)


@pytest.mark.slow
def test_self_npo_minus_five_makes_an_anti_class_model(mixture, base) -> None:
    config = TrainConfig(objective="self_npo", lr=1e-3, w_neg=-5.0)
    negative = last_state(run(base, mixture, config=config, steps=NPO_STEPS, every=NPO_STEPS)).model
    x, null = 5.0 * torch.randn((1000, 2), generator=torch.Generator().manual_seed(5)), torch.full((1000,), 8)
    with torch.no_grad():
        ratio = negative(x, 5.0, null).norm(dim=1).mean() / base(x, 5.0, null).norm(dim=1).mean()
    assert ratio > 4  # notes §5(e): 8.3× at σ = 5 (one seed)
    plain = radius(partial(sampling.model_cfg, base, w=3.0), sampling.grid(32))
    npo = radius(partial(sampling.model_cfg, base, w=3.0, negative=negative), sampling.grid(32))
    assert plain - npo > 0.1, (plain, npo)  # the anti-class branch pulls CFG inward (notes: 2.075 → 1.734)
