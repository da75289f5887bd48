"""The labs: one card in the gallery and one page in the router each."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Lab:
    slug: str  # page file stem and URL path
    title: str
    icon: str
    pitch: str
    paper: str
    arxiv: str

    @property
    def page(self) -> Path:
        return ROOT / "pages" / f"{self.slug}.py"

    @property
    def thumbnail(self) -> Path:
        return ROOT / "assets" / "thumbs" / f"{self.slug}.png"

    @property
    def paper_url(self) -> str:
        return f"https://arxiv.org/abs/{self.arxiv}"


LABS = (
    Lab(
        "landscape",
        "Loss landscapes",
        ":material/landscape:",
        "Walk a network's loss surface along its Hessian's eigenvectors and read generalization off the spectrum.",
        "Investigating generalization capabilities of neural networks by means of loss landscapes and Hessian analysis",
        "2412.10146",
    ),
    Lab(
        "attention_svm",
        "Transformers as SVMs",
        ":material/join:",
        "Watch softmax attention pick one token per sequence while its weights converge to a max-margin SVM.",
        "Transformers as Support Vector Machines",
        "2308.16898",
    ),
    Lab(
        "guidance",
        "Classifier-free guidance",
        ":material/tune:",
        "Turn up the guidance scale and see CFG oversaturate, and APG's orthogonal update keep the colours.",
        "Eliminating Oversaturation and Artifacts of High Guidance Scales in Diffusion Models",
        "2410.02416",
    ),
    Lab(
        "cam",
        "CF-CAM",
        ":material/center_focus_strong:",
        "See where a CNN looks: Grad-CAM, Score-CAM and CF-CAM's DBSCAN channel clusters, scored on ground truth.",
        "CF-CAM: Cluster Filter Class Activation Mapping for Reliable Gradient-Based Interpretability",
        "2504.00060",
    ),
    Lab(
        "cbo",
        "Consensus-based optimization",
        ":material/bubble_chart:",
        "A gradient-free particle swarm finds the global minimum of a rugged landscape, and behaves like gradient descent.",
        "Gradient is All You Need?",
        "2306.09778",
    ),
)
LABS_BY_SLUG = {lab.slug: lab for lab in LABS}
