"""Reference behaviours of the guidance lab (issue 5, notes/guidance.md §7)."""

from __future__ import annotations

import pytest
import torch
from diffusers.guiders import AdaptiveProjectedGuidance, ClassifierFreeGuidance, PerturbedAttentionGuidance

from core.guidance import (
    AdaptiveGuidance,
    EmpiricalDigitsDenoiser,
    GaussianMixtureDenoiser,
    apg,
    decompose,
    evaluate,
    load_pipeline,
    make_guider,
    mean_abs,
    run,
    sample,
)


def _drive(guider, conds, unconds):
    """Drive a diffusers guider over several steps exactly as a diffusers loop does."""
    outs = []
    for i, (c, u) in enumerate(zip(conds, unconds, strict=True)):
        guider.set_state(step=i, num_inference_steps=len(conds), timestep=torch.tensor(999 - i))
        guider.prepare_inputs({})
        outs.append(guider.forward(pred_cond=c, pred_uncond=u).pred)
    return outs


def _preds(steps=1, shape=(4, 1, 8, 8), dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        [torch.randn(shape, generator=g, dtype=dtype) for _ in range(steps)],
        [torch.randn(shape, generator=g, dtype=dtype) for _ in range(steps)],
    )


def test_apg_eta_one_no_rescale_no_momentum_is_cfg():
    (c,), (u,) = _preds()
    cfg = _drive(make_guider("cfg", w=7.5), [c], [u])[0]
    guided = _drive(make_guider("apg", w=7.5, eta=1.0, rescale=0.0, momentum=0.0), [c], [u])[0]
    assert (guided - cfg).abs().max().item() <= 1e-5
    assert (apg(c, u, 7.5, eta=1.0)[0] - cfg).abs().max().item() <= 1e-5
    # the paper's w: CFG = D_c + (w−1)(D_c − D_u)
    torch.testing.assert_close(cfg, c + 6.5 * (c - u))


def test_decompose_sums_to_delta_and_orthogonal_part_is_orthogonal():
    (c,), (u,) = _preds(shape=(6, 3, 5))
    delta = c - u
    par, orth = decompose(delta, c)
    torch.testing.assert_close(par + orth, delta, atol=1e-6, rtol=0)
    inner = (orth * c).flatten(1).sum(1).abs()
    scale = delta.flatten(1).norm(dim=1) * c.flatten(1).norm(dim=1)
    assert (inner / scale).max().item() < 1e-6
    # parallel parts are multiples of cond, per sample
    ratio = par.flatten(1) / c.flatten(1)
    assert torch.allclose(ratio, ratio[:, :1].expand_as(ratio), atol=1e-4)


def test_apg_reference_matches_diffusers_guider_with_rescale_and_momentum():
    conds, unconds = _preds(steps=10)
    guided = _drive(make_guider("apg", w=5.0, eta=0.3, rescale=4.0, momentum=-0.5), conds, unconds)
    running = None
    for c, u, g in zip(conds, unconds, guided, strict=True):
        ref, running = apg(c, u, 5.0, eta=0.3, rescale=4.0, momentum=-0.5, running=running)
        torch.testing.assert_close(g, ref, atol=1e-5, rtol=0)
    # the diffusers default formulation is D_u + s·upd (the trap): differs from the paper when η < 1
    c, u = conds[0], unconds[0]
    default = _drive(
        AdaptiveProjectedGuidance(guidance_scale=5.0, eta=0.0, adaptive_projected_guidance_rescale=0.0), [c], [u]
    )
    par, orth = decompose(c - u, c)
    torch.testing.assert_close(default[0], u + 5.0 * orth, atol=1e-5, rtol=0)


def test_rescale_caps_the_update_norm():
    c = torch.tensor([[0, 1.0, 0, 0], [0, 1.0, 0, 0]])
    u = c - torch.tensor([[3.0, 0, 0, 0], [0.1, 0, 0, 0]])  # Δ ⟂ cond: all of Δ is kept whatever η
    guided, _ = apg(c, u, 2.0, eta=0.0, rescale=1.0)
    norm = (guided - c).norm(dim=1)
    assert norm[0].item() <= 1.0 + 1e-6 and abs(norm[1].item() - 0.1) < 1e-6


def test_mixture_128_steps_cfg_overshoots_apg_stays_on_the_circle():
    D = GaussianMixtureDenoiser(n_classes=8, radius=2.0, std=0.15)
    labels = torch.arange(8).repeat(16)
    one = evaluate(D, run(D, make_guider("cfg", w=1.0), labels, steps=128, seed=0).x, labels)
    cfg = evaluate(D, run(D, make_guider("cfg", w=15.0), labels, steps=128, seed=0).x, labels)
    ap = evaluate(D, run(D, make_guider("apg", w=15.0, eta=0.0), labels, steps=128, seed=0).x, labels)
    assert abs(one["mean_radius"] - 2.0) <= 0.05
    assert cfg["mean_radius"] > 2.5
    assert abs(ap["mean_radius"] - 2.0) <= 0.05
    assert cfg["accuracy"] == 1.0 and ap["accuracy"] == 1.0


def test_states_are_frozen_per_step_and_count_model_calls():
    D = GaussianMixtureDenoiser()
    states = list(sample(D, make_guider("apg", w=4.0), torch.arange(8), steps=6, seed=3))
    assert [s.model_evals for s in states] == [2, 4, 6, 8, 10, 12]
    assert states[0].x0_uncond is not None and states[0].norm_parallel.shape == (8,)
    with pytest.raises(AttributeError):
        states[0].x = None
    again = list(sample(D, make_guider("apg", w=4.0), torch.arange(8), steps=6, seed=3))
    torch.testing.assert_close(states[-1].x, again[-1].x)
    # w = 1: the guider asks for the conditional branch only
    assert run(D, make_guider("cfg", w=1.0), torch.arange(8), steps=6).model_evals == 6


def test_adaptive_guidance_gamma_above_one_is_cfg_and_minus_one_truncates_after_warmup():
    D = GaussianMixtureDenoiser()
    labels = torch.arange(8).repeat(2)
    steps, warm = 12, 4
    cfg = run(D, make_guider("cfg", w=5.0), labels, steps=steps, seed=1)
    never = run(D, make_guider("adaptive", w=5.0, gamma=1.01, warmup_steps=warm), labels, steps=steps, seed=1)
    torch.testing.assert_close(never.x, cfg.x)
    assert never.model_evals == 2 * steps
    states = list(sample(D, make_guider("adaptive", w=5.0, gamma=-1.0, warmup_steps=warm), labels, steps=steps, seed=1))
    assert states[-1].model_evals == 2 * warm + (steps - warm)
    assert all(s.x0_uncond is not None for s in states[:warm])  # no truncation before the warm-up ends
    assert all(s.x0_uncond is None for s in states[warm:])
    # cond-only after truncation: the guided prediction is the conditional one
    torch.testing.assert_close(states[-1].x0_guided, states[-1].x0_cond)


def test_adaptive_guidance_is_a_diffusers_guider():
    g = AdaptiveGuidance(guidance_scale=3.0, gamma=0.5, warmup_steps=2)
    assert AdaptiveGuidance.from_config(g.config).gamma == 0.5
    with pytest.raises(ValueError, match="warmup_steps"):
        AdaptiveGuidance(warmup_steps=0)


def test_empirical_digits_denoiser_cfg_raises_mean_abs():
    D = EmpiricalDigitsDenoiser()
    labels = torch.arange(10).repeat(2)
    low = run(D, make_guider("cfg", w=1.0), labels, steps=12, seed=0).x
    high = run(D, make_guider("cfg", w=7.5), labels, steps=12, seed=0).x
    assert low.shape == (20, 1, 8, 8)
    assert mean_abs(high) > mean_abs(low)


@pytest.mark.slow
def test_digits_unet_apg_saturates_much_less_than_cfg_at_equal_accuracy():
    from core import zoo
    from core.guidance import digits_unet

    D, clf = digits_unet(), zoo.load("digits-classifier")
    labels = torch.arange(10).repeat(5)
    cfg = evaluate(D, run(D, make_guider("cfg", w=15.0), labels, steps=25, seed=0).x, labels, clf)
    ap = run(D, make_guider("apg", w=15.0, eta=0.0, rescale=2.0, momentum=-0.5), labels, steps=25, seed=0)
    ap = evaluate(D, ap.x, labels, clf)
    assert ap["saturation"] < 0.5 * cfg["saturation"]
    assert ap["accuracy"] >= cfg["accuracy"] - 0.02


def _tiny_dit(path):
    from diffusers import AutoencoderKL, DDIMScheduler, DiTPipeline, DiTTransformer2DModel

    torch.manual_seed(0)  # diffusers initialises weights from the global RNG
    transformer = DiTTransformer2DModel(
        num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=8, num_layers=1,
        sample_size=4, patch_size=2, num_embeds_ada_norm=10, norm_num_groups=2,
    )  # fmt: skip
    vae = AutoencoderKL(
        block_out_channels=(8,), down_block_types=("DownEncoderBlock2D",), up_block_types=("UpDecoderBlock2D",),
        latent_channels=4, norm_num_groups=8, sample_size=8,
    )  # fmt: skip
    DiTPipeline(transformer=transformer, vae=vae, scheduler=DDIMScheduler(num_train_timesteps=1000)).save_pretrained(
        path
    )


def test_local_class_conditional_pipeline_path(tmp_path):
    _tiny_dit(tmp_path / "dit")
    D = load_pipeline(tmp_path / "dit")
    states = list(sample(D, make_guider("apg", w=4.0, rescale=2.0), torch.tensor([1, 2, 9]), steps=3, seed=0))
    assert states[-1].x.shape == (3, 4, 4, 4) and states[-1].model_evals == 6
    assert torch.isfinite(D.decode(states[-1].x)).all()


def test_bad_input_raises_clear_value_errors(tmp_path):
    for kwargs, word in [({"w": -1.0}, "`w`"), ({"rescale": -0.5}, "rescale"), ({"momentum": 1.0}, "momentum"),
                         ({"momentum": -1.0}, "momentum")]:  # fmt: skip
        with pytest.raises(ValueError, match=word):
            make_guider("apg", **kwargs)
    with pytest.raises(ValueError, match="name"):
        make_guider("nope")
    with pytest.raises(ValueError, match="No pipeline"):
        load_pipeline(tmp_path / "missing")
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    unet = UNet2DModel(sample_size=8, in_channels=1, out_channels=1, layers_per_block=1, block_out_channels=(8, 8),
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                       norm_num_groups=4)  # fmt: skip
    DDPMPipeline(unet=unet, scheduler=DDPMScheduler()).save_pretrained(tmp_path / "uncond")
    with pytest.raises(ValueError, match="not class-conditional"):
        load_pipeline(tmp_path / "uncond")
    D = GaussianMixtureDenoiser()
    with pytest.raises(ValueError, match="does not fit"):
        run(D, PerturbedAttentionGuidance(perturbed_guidance_layers=[0]), torch.arange(8), steps=2)
    with pytest.raises(ValueError, match="labels"):
        run(D, ClassifierFreeGuidance(), torch.tensor([8]), steps=2)
    with pytest.raises(ValueError, match="steps"):
        run(D, ClassifierFreeGuidance(), torch.tensor([1]), steps=0)


def test_own_ddim_step_matches_diffusers_ddim_scheduler():
    from diffusers import DDIMScheduler

    from core.guidance import EpsilonDenoiser
    from core.guidance.models import make_scheduler

    g = torch.Generator().manual_seed(0)
    D = EpsilonDenoiser(lambda x, t, y: torch.zeros_like(x), make_scheduler("ddpm").config, (1, 8, 8), 10, 10)
    ref = DDIMScheduler.from_config(make_scheduler("ddpm").config, clip_sample=False, set_alpha_to_one=True)
    levels = D.levels(10)
    ref.set_timesteps(10)
    assert torch.equal(levels, ref.timesteps)
    x = torch.randn(3, 1, 8, 8, generator=g)
    for i, t in enumerate(levels):
        eps = torch.randn(x.shape, generator=g)
        a = D.alphas_cumprod[int(t)].item()
        x0 = (x - (1 - a) ** 0.5 * eps) / a**0.5
        ours = D.step(x, x0, i, levels)
        theirs = ref.step(eps, t, x, eta=0.0).prev_sample
        torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
        x = theirs
