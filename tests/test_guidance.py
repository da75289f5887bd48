"""Reference behaviours of the guidance lab (issue 5, notes/guidance.md §7), its contract, budgets and threads."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from diffusers.guiders import AdaptiveProjectedGuidance, ClassifierFreeGuidance, PerturbedAttentionGuidance

from core.errors import OptiscopeError
from core.guidance import (
    AdaptiveGuidance,
    EmpiricalDigitsDenoiser,
    GaussianMixtureDenoiser,
    GuiderConfig,
    apg,
    digits_unet,
    evaluate,
    load_pipeline,
    make_guider,
    run,
    sweep,
    trace,
)
from core.guidance.decompose import decompose
from core.guidance.denoisers import EpsilonDenoiser, leading_timesteps
from core.guidance.metrics import mean_abs
from core.guidance.models import make_scheduler
from core.runs import last_state


def final(denoiser, target, config: GuiderConfig, *, steps: int, seed: int = 0):
    """The last state of a run (its ``x`` is the final sample)."""
    return last_state(run(denoiser, target, guider=config, steps=steps, seed=seed))


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
    cfg = _drive(make_guider(GuiderConfig("cfg", w=7.5)), [c], [u])[0]
    guided = _drive(make_guider(GuiderConfig("apg", w=7.5, eta=1.0)), [c], [u])[0]
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
    guided = _drive(make_guider(GuiderConfig("apg", w=5.0, eta=0.3, rescale=4.0, momentum=-0.5)), conds, unconds)
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
    one = evaluate(D, final(D, labels, GuiderConfig("cfg", w=1.0), steps=128).x, labels)
    cfg = evaluate(D, final(D, labels, GuiderConfig("cfg", w=15.0), steps=128).x, labels)
    ap = evaluate(D, final(D, labels, GuiderConfig("apg", w=15.0, eta=0.0), steps=128).x, labels)
    assert abs(one["mean_radius"] - 2.0) <= 0.05
    assert cfg["mean_radius"] > 2.5
    assert abs(ap["mean_radius"] - 2.0) <= 0.05
    assert cfg["accuracy"] == 1.0 and ap["accuracy"] == 1.0


def test_states_are_frozen_per_step_and_count_model_calls():
    D = GaussianMixtureDenoiser()
    states = list(run(D, torch.arange(8), guider=GuiderConfig("apg", w=4.0), steps=6, seed=3))
    assert [s.model_evals for s in states] == [2, 4, 6, 8, 10, 12]
    assert [s.step for s in states] == list(range(6)) and {s.steps for s in states} == {6}
    assert states[0].x0_uncond is not None and states[0].norm_parallel.shape == (8,)
    with pytest.raises(AttributeError):
        states[0].x = None
    again = list(run(D, torch.arange(8), guider=GuiderConfig("apg", w=4.0), steps=6, seed=3))
    torch.testing.assert_close(states[-1].x, again[-1].x)
    # w = 1: the guider asks for the conditional branch only
    assert final(D, torch.arange(8), GuiderConfig("cfg", w=1.0), steps=6).model_evals == 6


def test_run_is_validated_when_called_and_computes_nothing_before_next():
    calls = []

    def model_fn(x, t, y):
        calls.append(1)
        return torch.zeros_like(x)

    D = EpsilonDenoiser(model_fn, make_scheduler("ddpm").config, (1, 8, 8), 10, 10)
    states = run(D, torch.arange(4), guider=GuiderConfig("cfg", w=3.0), steps=5)
    assert calls == []
    next(states)
    assert len(calls) == 2
    for bad, word in [({"steps": 0}, "steps"), ({"steps": 2.5}, "steps"), ({"seed": -1}, "seed")]:
        with pytest.raises(OptiscopeError, match=word):
            run(D, torch.arange(4), guider=GuiderConfig("cfg"), **bad)
    for target in ([], [10], [-1], [0.5], "abc"):
        with pytest.raises(OptiscopeError, match="target"):
            run(D, target, guider=GuiderConfig("cfg"), steps=2)
    with pytest.raises(OptiscopeError, match="x_init"):
        run(D, torch.arange(4), guider=GuiderConfig("cfg"), steps=2, x_init=torch.zeros(3, 1, 8, 8))
    assert calls == [1, 1]


def test_a_guider_instance_is_copied_so_one_guider_drives_several_runs():
    D = GaussianMixtureDenoiser()
    g = make_guider(GuiderConfig("apg", w=6.0, momentum=-0.5))
    first, second = (
        run(D, torch.arange(8), guider=g, steps=8, seed=0),
        run(D, torch.arange(8), guider=g, steps=8, seed=0),
    )
    pairs = list(zip(first, second, strict=True))  # interleaved: a shared momentum buffer would mix them
    torch.testing.assert_close(pairs[-1][0].x, pairs[-1][1].x, atol=0, rtol=0)
    assert g._step is None  # the caller's guider was never stepped


def test_adaptive_guidance_gamma_above_one_is_cfg_and_minus_one_truncates_after_warmup():
    D = GaussianMixtureDenoiser()
    labels = torch.arange(8).repeat(2)
    steps, warm = 12, 4
    cfg = final(D, labels, GuiderConfig("cfg", w=5.0), steps=steps, seed=1)
    never = final(D, labels, GuiderConfig("adaptive", w=5.0, gamma=1.01, warmup_steps=warm), steps=steps, seed=1)
    torch.testing.assert_close(never.x, cfg.x)
    assert never.model_evals == 2 * steps
    config = GuiderConfig("adaptive", w=5.0, gamma=-1.0, warmup_steps=warm)
    states = list(run(D, labels, guider=config, steps=steps, seed=1))
    assert states[-1].model_evals == 2 * warm + (steps - warm)
    assert all(s.x0_uncond is not None for s in states[:warm])  # no truncation before the warm-up ends
    assert all(s.x0_uncond is None for s in states[warm:])
    # cond-only after truncation: the guided prediction is the conditional one
    torch.testing.assert_close(states[-1].x0_guided, states[-1].x0_cond)


def test_trace_stacks_every_step_with_nan_where_the_uncond_branch_was_skipped():
    D = GaussianMixtureDenoiser()
    config = GuiderConfig("adaptive", w=5.0, gamma=-1.0, warmup_steps=3)
    states = list(run(D, torch.arange(8), guider=config, steps=7, seed=2))
    t = trace(iter(states))
    assert t.x.shape == (7, 8, 2) and t.x0_uncond.shape == (7, 8, 2) and t.cos.shape == (7, 8)
    np.testing.assert_array_equal(t.x[-1], states[-1].x.float().numpy())
    np.testing.assert_allclose(t.delta_parallel[1], states[1].delta_parallel.float().numpy())
    assert np.isfinite(t.x0_uncond[:3]).all() and np.isnan(t.x0_uncond[3:]).all()
    assert np.isnan(t.per_step()["‖Δ∥‖"][3:]).all()
    assert t.model_evals.tolist() == [2, 4, 6, 7, 8, 9, 10]


def test_budgets_are_refused_by_name():
    D = GaussianMixtureDenoiser()
    with pytest.raises(OptiscopeError, match="sample-steps"):
        run(D, torch.arange(1000) % 8, guider=GuiderConfig("cfg"), steps=100)  # 1e5 > 5e4
    latent = EpsilonDenoiser(lambda x, t, y: torch.zeros_like(x), make_scheduler("ddpm").config, (4, 32, 32), 10, 10)
    states = run(latent, torch.arange(100) % 10, guider=GuiderConfig("cfg"), steps=10)  # 1,000 sample-steps: fine
    with pytest.raises(OptiscopeError, match="held values"):
        trace(states)  # but 10 × 100 × 4096 values > 2e6
    with pytest.raises(OptiscopeError, match="runs"):
        sweep(D, {"a": GuiderConfig("cfg"), "b": GuiderConfig("apg")}, ws=list(range(9)), n_samples=8, steps=2)
    with pytest.raises(OptiscopeError, match="n_samples"):
        sweep(D, {"a": GuiderConfig("cfg")}, ws=[1.0], n_samples=2, steps=2)


def test_sweep_rows_follow_w_and_guiders():
    D = GaussianMixtureDenoiser()
    states = list(
        sweep(D, {"CFG": GuiderConfig("cfg"), "APG": GuiderConfig("apg")}, ws=[1.0, 9.0], n_samples=32, steps=32)
    )
    assert [s.fraction for s in states] == [0.25, 0.5, 0.75, 1.0]
    rows = states[-1].rows
    assert [(r["guider"], r["w"]) for r in rows] == [("CFG", 1.0), ("APG", 1.0), ("CFG", 9.0), ("APG", 9.0)]
    assert rows[2]["mean_radius"] > rows[3]["mean_radius"] + 0.3  # CFG overshoots the circle, APG does not


def test_adaptive_guidance_is_a_diffusers_guider():
    g = AdaptiveGuidance(guidance_scale=3.0, gamma=0.5, warmup_steps=2)
    assert AdaptiveGuidance.from_config(g.config).gamma == 0.5
    with pytest.raises(OptiscopeError, match="warmup_steps"):
        AdaptiveGuidance(warmup_steps=0)


def test_empirical_digits_denoiser_cfg_raises_mean_abs():
    D = EmpiricalDigitsDenoiser()
    labels = torch.arange(10).repeat(2)
    low = final(D, labels, GuiderConfig("cfg", w=1.0), steps=12).x
    high = final(D, labels, GuiderConfig("cfg", w=7.5), steps=12).x
    assert low.shape == (20, 1, 8, 8)
    assert mean_abs(high) > mean_abs(low)


@pytest.mark.slow
def test_digits_unet_apg_saturates_much_less_than_cfg_at_equal_accuracy():
    from core import zoo

    D, clf = digits_unet(), zoo.load("digits-classifier")
    labels = torch.arange(10).repeat(5)
    cfg = evaluate(D, final(D, labels, GuiderConfig("cfg", w=15.0), steps=25).x, labels, classifier=clf)
    ap = final(D, labels, GuiderConfig("apg", w=15.0, rescale=2.0, momentum=-0.5), steps=25)
    ap = evaluate(D, ap.x, labels, classifier=clf)
    assert ap["saturation"] < 0.5 * cfg["saturation"]
    assert ap["accuracy"] >= cfg["accuracy"] - 0.02


def test_levels_do_not_touch_a_scheduler_and_match_ddim_set_timesteps():
    from diffusers import DDIMScheduler

    D = digits_unet()
    ref = DDIMScheduler.from_config(make_scheduler("ddpm").config, timestep_spacing="leading")
    for steps in (1, 3, 7, 25, 64, 128, 999, 1000):
        ref.set_timesteps(steps)
        assert torch.equal(D.levels(steps), ref.timesteps), steps
    assert torch.equal(leading_timesteps(10, 1000, steps_offset=1), torch.arange(901, 0, -100))
    assert not hasattr(D, "scheduler")  # nothing mutable is kept from the scheduler


def test_threads_sampling_one_shared_denoiser_match_sequential_results():
    """The page shares one denoiser per model through st.cache_resource: concurrent runs must not interfere."""
    unet, mixture = digits_unet(), GaussianMixtureDenoiser()
    # different seeds and step counts: a shared scheduler's set_timesteps would hand one run another's timesteps
    jobs = [(unet, seed, name, 3 + seed) for seed in range(6) for name in ("cfg", "apg")]
    jobs += [(mixture, seed, "apg", 3 + seed) for seed in range(6)]

    def sample(job):
        D, seed, name, steps = job
        return final(D, torch.arange(6) % 6, GuiderConfig(name, w=5.0, momentum=-0.5), steps=steps, seed=seed).x

    sequential = [sample(job) for job in jobs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = list(pool.map(sample, jobs * 2))
    mismatches = sum(not torch.equal(a, b) for a, b in zip(sequential * 2, concurrent, strict=True))
    assert mismatches == 0


def _tiny_dit(path):
    from diffusers import AutoencoderKL, DDIMScheduler, DiTPipeline, DiTTransformer2DModel

    torch.manual_seed(0)  # diffusers initialises weights from the global RNG (test setup only)
    transformer = DiTTransformer2DModel(
        num_attention_heads=2,
        attention_head_dim=8,
        in_channels=4,
        out_channels=8,
        num_layers=1,
        sample_size=4,
        patch_size=2,
        num_embeds_ada_norm=10,
        norm_num_groups=2,
    )
    vae = AutoencoderKL(
        block_out_channels=(8,),
        down_block_types=("DownEncoderBlock2D",),
        up_block_types=("UpDecoderBlock2D",),
        latent_channels=4,
        norm_num_groups=8,
        sample_size=8,
    )
    pipe = DiTPipeline(transformer=transformer, vae=vae, scheduler=DDIMScheduler(num_train_timesteps=1000))
    pipe.save_pretrained(path)
    return pipe.to(torch.float32).transformer.eval()  # eval: in training mode DiT drops class labels at random


def test_pipeline_path_equals_a_hand_loop_of_ddim_scheduler_step(tmp_path):
    """CFG on x0 is CFG on ε (x0 is affine in ε with weights summing to 1), so a hand DDIM loop is the reference."""
    from diffusers import DDIMScheduler

    transformer = _tiny_dit(tmp_path / "dit")
    D = load_pipeline("dit", root=tmp_path)
    target, steps, w = torch.tensor([1, 2, 9]), 6, 4.0
    states = list(run(D, target, guider=GuiderConfig("cfg", w=w), steps=steps, seed=0))
    assert states[-1].x.shape == (3, 4, 4, 4) and states[-1].model_evals == 2 * steps
    assert torch.isfinite(D.decode(states[-1].x)).all()

    scheduler = DDIMScheduler(num_train_timesteps=1000, clip_sample=False, timestep_spacing="leading")
    scheduler.set_timesteps(steps)
    x = torch.randn((3, 4, 4, 4), generator=torch.Generator().manual_seed(0))
    null = torch.full((3,), 10)
    with torch.no_grad():
        for t, state in zip(scheduler.timesteps, states, strict=True):
            ts = torch.full((3,), int(t))
            eps_c = transformer(x, timestep=ts, class_labels=target).sample[:, :4]
            eps_u = transformer(x, timestep=ts, class_labels=null).sample[:, :4]
            expected = scheduler.step(eps_c + (w - 1) * (eps_c - eps_u), t, x, eta=0.0).prev_sample
            # the random DiT's latents grow to |x| ~ 150: 1e-5 of their scale (the float32 ε -> x0 -> ε round trip)
            assert (state.x - expected).abs().max().item() <= 1e-5 * max(1.0, expected.abs().max().item())
            x = expected


def test_pipeline_folder_outside_the_root_is_refused_before_the_file_system_is_asked(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "outside").mkdir()
    (root / "escape").symlink_to(tmp_path / "outside")
    for path in ("../outside", str(tmp_path / "outside"), "escape", "/etc", "escape/../.."):
        with pytest.raises(OptiscopeError, match="inside the pipeline root"):
            load_pipeline(path, root=root)
    for path in ("missing", "~", ""):  # no `~` expansion: a name inside the root
        with pytest.raises(OptiscopeError, match="model_index.json"):
            load_pipeline(path, root=root)


def test_bad_input_raises_clear_optiscope_errors(tmp_path):
    for options, word in [
        ({"w": -1.0}, "`w`"),
        ({"w": float("nan")}, "`w`"),
        ({"rescale": -0.5}, "rescale"),
        ({"momentum": 1.0}, "momentum"),
        ({"momentum": -1.0}, "momentum"),
        ({"eta": float("inf")}, "eta"),
        ({"warmup_steps": 0}, "warmup_steps"),
    ]:
        with pytest.raises(OptiscopeError, match=word):
            GuiderConfig("apg", **options)
    with pytest.raises(OptiscopeError, match="name"):
        GuiderConfig("nope")
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    unet = UNet2DModel(
        sample_size=8,
        in_channels=1,
        out_channels=1,
        layers_per_block=1,
        block_out_channels=(8, 8),
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=4,
    )
    DDPMPipeline(unet=unet, scheduler=DDPMScheduler()).save_pretrained(tmp_path / "uncond")
    with pytest.raises(OptiscopeError, match="not class-conditional"):
        load_pipeline("uncond", root=tmp_path)
    D = GaussianMixtureDenoiser()
    with pytest.raises(OptiscopeError, match="does not fit"):
        run(D, torch.arange(8), guider=PerturbedAttentionGuidance(perturbed_guidance_layers=[0]), steps=2)
    with pytest.raises(OptiscopeError, match="guider"):
        run(D, torch.arange(8), guider="cfg", steps=2)
    with pytest.raises(OptiscopeError, match="target"):
        run(D, torch.tensor([8]), guider=ClassifierFreeGuidance(), steps=2)
    with pytest.raises(OptiscopeError, match="non-finite"):
        last_state(run(D, torch.arange(8), guider=ClassifierFreeGuidance(guidance_scale=1e308), steps=4))
    with pytest.raises(OptiscopeError, match="finite"):
        apg(torch.full((2, 3), float("nan")), torch.zeros(2, 3), 3.0)
    with pytest.raises(OptiscopeError, match="`x`"):
        evaluate(D, torch.zeros(0, 2), torch.arange(2))
    with pytest.raises(OptiscopeError, match="GuidanceState"):
        trace(iter([1, 2]))
    with pytest.raises(OptiscopeError, match="stop"):
        AdaptiveGuidance(stop=2.0)


def test_own_ddim_step_matches_diffusers_ddim_scheduler():
    from diffusers import DDIMScheduler

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


@pytest.mark.gpu
def test_cuda_runs_match_cpu_runs(cuda, monkeypatch):
    """The lab's core path on cuda vs cpu: same seed, same start (noise is drawn on the CPU).

    Tolerances: the float64 exact mixture to 1e-9; the float32 digits UNet (TF32 off) to 1e-3 after 25 DDIM
    steps, since cuDNN convolutions sum in another order; metrics within one sample of 40.
    """
    from core import zoo

    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    target = torch.arange(40) % 8
    cpu_mix, gpu_mix = GaussianMixtureDenoiser(), GaussianMixtureDenoiser(device=cuda)
    config = GuiderConfig("apg", w=15.0, rescale=2.0, momentum=-0.5)
    a, b = final(cpu_mix, target, config, steps=64), final(gpu_mix, target, config, steps=64)
    assert b.x.device.type == "cuda" and b.norm_parallel.device.type == "cuda"
    torch.testing.assert_close(b.x.cpu(), a.x, atol=1e-9, rtol=0)

    target = torch.arange(40) % 10
    cpu_unet, gpu_unet = digits_unet(), digits_unet(model=zoo.load("digits-unet", device=cuda))
    for name in ("cfg", "apg", "adaptive"):
        config = GuiderConfig(name, w=7.5, rescale=2.0, gamma=0.99, warmup_steps=8)
        a, b = final(cpu_unet, target, config, steps=25), final(gpu_unet, target, config, steps=25)
        assert a.model_evals == b.model_evals, name
        torch.testing.assert_close(b.x.cpu(), a.x, atol=1e-3, rtol=1e-3)
        clf_cpu, clf_gpu = zoo.load("digits-classifier"), zoo.load("digits-classifier", device=cuda)
        ma, mb = (
            evaluate(cpu_unet, a.x, target, classifier=clf_cpu),
            evaluate(gpu_unet, b.x, target, classifier=clf_gpu),
        )
        assert abs(ma["accuracy"] - mb["accuracy"]) <= 1 / 40 and abs(ma["saturation"] - mb["saturation"]) <= 1e-3
