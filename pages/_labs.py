"""The labs: one card in the gallery and one page in the router each, grouped by topic.

Adding a lab is one ``Lab(...)`` entry here (its ``slug`` names ``core/<slug>/`` and ``pages/<slug>.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Topic key -> heading, in the order the gallery and the sidebar show them.
TOPICS = {
    "curvature": "Curvature and loss landscapes",
    "optimizers": "Optimizers",
    "guidance": "Diffusion guidance and training",
    "interpretability": "Interpretability",
    "gradient-free": "Gradient-free and swarms",
    "learning-rules": "Learning rules and theory",
    "bilevel": "Bilevel and constrained",
    "privacy-rl": "Privacy and exploration",
}


@dataclass(frozen=True)
class Lab:
    slug: str  # page file stem and URL path
    title: str
    icon: str
    pitch: str
    paper: str
    arxiv: str
    topic: str

    def __post_init__(self) -> None:
        if self.topic not in TOPICS:
            raise ValueError(f"Expected `topic` to be one of {list(TOPICS)}, but got {self.topic!r}")

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
        "curvature",
    ),
    Lab(
        "attention_svm",
        "Transformers as SVMs",
        ":material/join:",
        "Watch softmax attention pick one token per sequence while its weights converge to a max-margin SVM.",
        "Transformers as Support Vector Machines",
        "2308.16898",
        "learning-rules",
    ),
    Lab(
        "guidance",
        "Classifier-free guidance",
        ":material/tune:",
        "Turn up the guidance scale and see CFG oversaturate, and APG's orthogonal update keep the colours.",
        "Eliminating Oversaturation and Artifacts of High Guidance Scales in Diffusion Models",
        "2410.02416",
        "guidance",
    ),
    Lab(
        "cam",
        "CF-CAM",
        ":material/center_focus_strong:",
        "See where a CNN looks: Grad-CAM, Score-CAM and CF-CAM's DBSCAN channel clusters, scored on ground truth.",
        "CF-CAM: Cluster Filter Class Activation Mapping for Reliable Gradient-Based Interpretability",
        "2504.00060",
        "interpretability",
    ),
    Lab(
        "cbo",
        "Consensus-based optimization",
        ":material/bubble_chart:",
        "A gradient-free particle swarm finds the global minimum of a rugged landscape, and behaves like gradient descent.",
        "Gradient is All You Need?",
        "2306.09778",
        "gradient-free",
    ),
    Lab(
        slug="bilevel",
        title="Bilevel optimization",
        icon=":material/stacks:",
        pitch="Differentiate through a solver: implicit vs unrolled hypergradients, distilled digits, LV-HBA and BO-REP.",
        paper="Efficient and Modular Implicit Differentiation",
        arxiv="2105.15183",
        topic="bilevel",
    ),
    Lab(
        slug="structured",
        title="Structured first-order methods",
        icon=":material/grid_view:",
        pitch="Pick the best coordinate, solve constraints with sketched Newton steps, and slide past costly gradients.",
        paper="Let's Make Block Coordinate Descent Converge Faster",
        arxiv="1712.08859",
        topic="optimizers",
    ),
    Lab(
        slug="optimizer_race",
        title="Optimizer race",
        icon=":material/sprint:",
        pitch="Learning-rate-free optimizers at frozen defaults race a tuned NadamW, scored the AlgoPerf way.",
        paper="How far away are truly hyperparameter-free learning algorithms?",
        arxiv="2505.24005",
        topic="optimizers",
    ),
    Lab(
        slug="exploration",
        title="Reward-free exploration",
        icon=":material/explore:",
        pitch="Explore a chain MDP without rewards, then plan for any reward: random play vs UCRL-RFE vs horizon-free.",
        paper="Optimal Horizon-Free Reward-Free Exploration for Linear Mixture MDPs",
        arxiv="2303.10165",
        topic="privacy-rl",
    ),
    Lab(
        slug="blackbox",
        title="Black-box optimization",
        icon=":material/explore_nearby:",
        pitch="Attack a neural surrogate to choose the next move, and race direct search, CMA-ES and CBO per evaluation.",
        paper="Optimization by Directional Attacks: Solving Problems with Neural Network Surrogates",
        arxiv="2510.01461",
        topic="gradient-free",
    ),
    Lab(
        slug="explanations",
        title="Which explanation?",
        icon=":material/compare:",
        pitch="Eight attribution methods as one linear fit on eight neighbourhoods: pick the one that matches your question.",
        paper="Which Explanation Should I Choose? A Function Approximation Perspective to Characterizing Post Hoc Explanations",
        arxiv="2206.01254",
        topic="interpretability",
    ),
    Lab(
        slug="privacy",
        title="Private optimization",
        icon=":material/shield_lock:",
        pitch="Train across clients under (ε, δ)-DP: DIFF2's private gradient differences against DP-GD, ε drawn as spent.",
        paper="DIFF2: Differential Private Optimization via Gradient Differences for Nonconvex Distributed Learning",
        arxiv="2302.03884",
        topic="privacy-rl",
    ),
    Lab(
        slug="curvature",
        title="Curvature steps",
        icon=":material/ssid_chart:",
        pitch="Turn Hessians into steps: M-FAC inverse-Fisher products and pruning, and gradient-regularized Newton (GNS).",
        paper="M-FAC: Efficient Matrix-Free Approximations of Second-Order Information",
        arxiv="2107.03356",
        topic="curvature",
    ),
    Lab(
        slug="learning_rules",
        title="Learning without backprop",
        icon=":material/alt_route:",
        pitch="Learn without end-to-end backprop: NoProp's denoising blocks, ±1 threshold nets by RRR, perturbation gradients.",
        paper="NoProp: Training Neural Networks without Full Back-propagation or Full Forward-propagation",
        arxiv="2503.24322",
        topic="learning-rules",
    ),
    Lab(
        slug="steering",
        title="Steering the sampler",
        icon=":material/explore:",
        pitch="Pick the guidance scale per sample and step, project before each CFG step, guide with a clean classifier.",
        paper="Dynamic Classifier-Free Diffusion Guidance via Online Feedback",
        arxiv="2509.16131",
        topic="guidance",
    ),
    Lab(
        slug="diffusion_training",
        title="Training the denoiser",
        icon=":material/model_training:",
        pitch="Train the diffusion model itself: distil CFG into one call and 4 steps, Self-NPO, DSM as kernel regression.",
        paper="On Distillation of Guided Diffusion Models",
        arxiv="2210.03142",
        topic="guidance",
    ),
)
LABS_BY_SLUG = {lab.slug: lab for lab in LABS}


def by_topic(labs: tuple[Lab, ...] = LABS) -> dict[str, list[Lab]]:
    """``{topic heading: labs}`` in the order of ``TOPICS``, empty topics left out."""
    groups = {heading: [lab for lab in labs if lab.topic == key] for key, heading in TOPICS.items()}
    return {heading: group for heading, group in groups.items() if group}
