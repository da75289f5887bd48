"""A local, class-conditional diffusers pipeline (DiT, or a UNet2DModel with class embeddings) as a denoiser."""

from __future__ import annotations

from pathlib import Path

import torch

from .denoisers import EpsilonDenoiser


def pipeline_denoiser(pipe) -> EpsilonDenoiser:
    """Wrap a loaded pipeline: DiT (transformer + VAE, null class = ``num_embeds_ada_norm``) or a UNet pipeline
    whose ``unet`` has ``num_class_embeds`` (null class = the last one). Sampling runs on the latents.

    Raises ValueError when the pipeline is not class-conditional.
    """
    transformer, unet = getattr(pipe, "transformer", None), getattr(pipe, "unet", None)
    scheduler = getattr(pipe, "scheduler", None)
    if scheduler is None or "num_train_timesteps" not in scheduler.config:
        raise ValueError(
            f"{type(pipe).__name__} has no DDPM-style scheduler; expected an ε-prediction diffusion pipeline."
        )
    if scheduler.config.get("prediction_type", "epsilon") != "epsilon":
        raise ValueError(f"Expected an ε-prediction scheduler, but got `{scheduler.config.prediction_type}`.")
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
        raise ValueError(
            f"{type(pipe).__name__} is not class-conditional: expected a DiT transformer (`num_embeds_ada_norm`) "
            "or a UNet with `num_class_embeds`."
        )
    decode = None
    vae = getattr(pipe, "vae", None)
    if vae is not None:

        def decode(latents):
            with torch.no_grad():
                return vae.decode(latents / vae.config.scaling_factor).sample

    return EpsilonDenoiser(model_fn, scheduler.config, shape, num_classes, null, decode=decode)


def load_pipeline(path: str | Path, device: str | torch.device = "cpu") -> EpsilonDenoiser:
    """Load a class-conditional diffusers pipeline from a local folder (never downloads) as a denoiser.

    >>> load_pipeline("/no/such/folder")
    Traceback (most recent call last):
    ...
    ValueError: No pipeline folder at `/no/such/folder`.
    """
    from diffusers import DiffusionPipeline

    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise ValueError(f"No pipeline folder at `{path}`.")
    if not (folder / "model_index.json").exists():
        raise ValueError(f"`{path}` has no model_index.json; expected a folder written by `pipeline.save_pretrained`.")
    try:
        pipe = DiffusionPipeline.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"Could not load the pipeline at `{path}`: {err}") from None
    return pipeline_denoiser(pipe.to(device))
