"""A local, class-conditional diffusers pipeline (DiT, or a UNet2DModel with class embeddings) as a denoiser."""

from __future__ import annotations

from pathlib import Path

import torch

from core.errors import OptiscopeError

from .denoisers import EpsilonDenoiser

PIPELINE_SAMPLE_STEPS = 1_000  # samples × steps per run: a DiT or latent UNet call costs seconds on a CPU


def pipeline_denoiser(pipe, *, device: torch.device | str = "cpu") -> EpsilonDenoiser:
    """Wrap a loaded pipeline: DiT (transformer + VAE, null class = ``num_embeds_ada_norm``) or a UNet pipeline
    whose ``unet`` has ``num_class_embeds`` (null class = the last one). Sampling runs on the latents.

    Raises OptiscopeError when the pipeline is not class-conditional. Budget: 1,000 sample-steps per run.
    """
    transformer, unet = getattr(pipe, "transformer", None), getattr(pipe, "unet", None)
    scheduler = getattr(pipe, "scheduler", None)
    if scheduler is None or "num_train_timesteps" not in scheduler.config:
        raise OptiscopeError(
            f"{type(pipe).__name__} has no DDPM-style scheduler; expected an ε-prediction diffusion pipeline."
        )
    if scheduler.config.get("prediction_type", "epsilon") != "epsilon":
        raise OptiscopeError(f"Expected an ε-prediction scheduler, but got `{scheduler.config.prediction_type}`.")
    if transformer is not None and transformer.config.get("num_embeds_ada_norm"):
        cfg = transformer.config
        channels, num_classes = cfg.in_channels, int(cfg.num_embeds_ada_norm)
        shape = (channels, cfg.sample_size, cfg.sample_size)

        def model_fn(x, t, labels):
            out = transformer(x, timestep=t, class_labels=labels).sample
            return out[:, :channels]  # learned-σ models return (ε, variance) stacked on channels

        null = num_classes  # DiT's LabelEmbedding keeps its CFG row after the real classes
    elif unet is not None and unet.config.get("num_class_embeds"):
        cfg = unet.config
        size = cfg.sample_size if isinstance(cfg.sample_size, int) else cfg.sample_size[0]
        shape = (cfg.in_channels, size, size)
        num_classes, null = int(cfg.num_class_embeds) - 1, int(cfg.num_class_embeds) - 1

        def model_fn(x, t, labels):
            return unet(x, t, class_labels=labels).sample

    else:
        raise OptiscopeError(
            f"{type(pipe).__name__} is not class-conditional: expected a DiT transformer (`num_embeds_ada_norm`) "
            "or a UNet with `num_class_embeds`."
        )
    decode = None
    vae = getattr(pipe, "vae", None)
    if vae is not None:

        def decode(latents):
            with torch.no_grad():
                return vae.decode(latents / vae.config.scaling_factor).sample

    return EpsilonDenoiser(
        model_fn,
        scheduler.config,
        shape,
        num_classes,
        null,
        device=device,
        max_sample_steps=PIPELINE_SAMPLE_STEPS,
        decode=decode,
    )


def load_pipeline(path: str | Path, *, root: str | Path, device: torch.device | str = "cpu") -> EpsilonDenoiser:
    """Load a class-conditional diffusers pipeline from a local folder inside ``root`` (never downloads).

    ``path`` is relative to ``root`` (or absolute); anything that resolves outside ``root`` (``..``, a symlink
    out) is refused before the file system is asked whether it exists, so a path says nothing about the server.

    >>> load_pipeline("../etc", root="/srv/pipelines")
    Traceback (most recent call last):
    core.errors.OptiscopeError: Expected `path` inside the pipeline root, but got '../etc'
    """
    from diffusers import DiffusionPipeline

    try:
        base = Path(root).resolve()
        folder = (base / path).resolve()
        inside = folder.is_relative_to(base)
        found = inside and (folder / "model_index.json").is_file()
    except (OSError, ValueError):  # a name too long, a NUL byte
        raise OptiscopeError(f"Expected `path` to be a folder name, but got {str(path)[:100]!r}") from None
    if not inside:
        raise OptiscopeError(f"Expected `path` inside the pipeline root, but got {str(path)!r}")
    if not found:
        raise OptiscopeError(
            f"Expected a pipeline folder (with model_index.json, written by `save_pretrained`) at {str(path)!r}"
        )
    try:
        pipe = DiffusionPipeline.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise OptiscopeError(f"Could not load the pipeline at {str(path)!r}: {err}") from None
    return pipeline_denoiser(pipe.to(device), device=device)
