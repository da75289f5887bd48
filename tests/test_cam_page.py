"""AppTest of the CAM page: each preset shows the number it exists to show; links with garbage or old values."""

from __future__ import annotations

import base64
import json
import time

import numpy as np
from streamlit.testing.v1 import AppTest

from core.data.shapes import CLASSES
from tests.conftest import ROOT


def explainer_values(at) -> dict[str, str]:
    """The "How to read: the maps" table (quantity → displayed value)."""
    table = next(d.value for d in at.dataframe if "quantity" in d.value.columns)
    return dict(zip(table["quantity"], table["value"], strict=True))


def heatmaps(at) -> dict[str, np.ndarray]:
    """The maps chart's heatmap panels by method (the ✓/✗ suffix dropped), decoded from plotly's typed arrays."""
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    out = {}
    for trace in spec["data"]:
        if trace["type"] == "heatmap":
            z = trace["z"]
            shape = [int(n) for n in str(z["shape"]).split(",")]
            out[trace["name"].rstrip(" ✓✗")] = np.frombuffer(base64.b64decode(z["bdata"]), z["dtype"]).reshape(shape)
    return out


def test_default_view_shows_every_map_and_the_authors_clustering(open_page):
    at = open_page("pages/cam.py")
    assert not at.exception and not at.error
    assert len(at.get("plotly_chart")) == 3  # maps, maps per channel group, cluster scatter
    assert list(heatmaps(at)) == ["Grad-CAM", "Grad-CAM++", "Score-CAM", "CF-CAM"]
    values = explainer_values(at)
    assert values["dominant channels"] == "32"  # the top quarter of block4's 128 channels
    assert int(values["clusters"]) >= 1


def test_preset_authors_defaults_keeps_a_quarter_of_the_channels_dominant(open_page):
    at = open_page("pages/cam.py", layer="block3", dominant="0.5", filter="none")
    at.sidebar.button(key="preset-0").click().run()
    assert not at.exception and not at.error
    assert at.selectbox(key="filter").value == "gaussian"
    assert explainer_values(at)["dominant channels"] == "16"  # 25% of block3's 64 channels


def test_preset_grad_cam_limit_shows_zero_clusters_and_the_grad_cam_map(open_page):
    at = open_page("pages/cam.py", image="4")
    at.sidebar.button(key="preset-1").click().run()
    assert not at.exception and not at.error
    values = explainer_values(at)
    assert (values["dominant channels"], values["clusters"], values["noise channels (dropped)"]) == ("128", "0", "0")
    maps = heatmaps(at)
    np.testing.assert_allclose(maps["CF-CAM"], maps["Grad-CAM"], atol=1e-6)
    assert maps["Grad-CAM"].max() == 1.0


def test_preset_one_cluster_gives_the_same_cf_cam_map_for_every_class(open_page):
    at = open_page("pages/cam.py", image="2")
    at.sidebar.button(key="preset-2").click().run()
    values = explainer_values(at)
    assert (values["dominant channels"], values["clusters"], values["noise channels (dropped)"]) == ("0", "1", "0")
    cf, grad = [], []
    for name in CLASSES:
        at.selectbox(key="target").set_value(name).run()
        assert not at.exception and not at.error
        maps = heatmaps(at)
        cf.append(maps["CF-CAM"])
        grad.append(maps["Grad-CAM"])
    # One weight for the whole cluster, softmaxed over its members: uniform β, the mean activation's map.
    assert cf[0].max() == 1.0 and all(np.allclose(m, cf[0], atol=1e-5) for m in cf)
    assert max(np.abs(g - grad[0]).max() for g in grad) > 0.05  # while Grad-CAM depends on the class


def test_pointing_game_marks_follow_the_ground_truth_mask(open_page):
    at = open_page("pages/cam.py", image="1")
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    marks = [t["name"][-1] for t in spec["data"] if t["type"] == "heatmap"]
    assert len(marks) == 4 and set(marks) <= {"✓", "✗"}


def test_garbage_and_unknown_link_values_fall_back_with_a_notice(open_page):
    at = open_page(
        "pages/cam.py",
        filter="median",
        layer="fc",
        combine="max",
        source="Nope",
        image="99",
        sigma="-3",
        target="dragon",
        substrate="grey",
    )
    assert not at.exception and not at.error
    assert at.selectbox(key="filter").value == "gaussian" and at.selectbox(key="layer").value == "block4"
    assert at.radio(key="combine").value == "softmax" and at.radio(key="source").value == "gallery"
    notices = " ".join(t.value for t in at.toast)
    for key in ("filter", "layer", "combine", "source", "image", "sigma", "target"):
        assert f"`{key}=" in notices, key


def test_old_link_labels_still_select_their_keys(open_page):
    at = open_page("pages/cam.py", source="Upload")  # the label the radio used to put in the URL
    assert not at.exception and not at.error
    assert at.radio(key="source").value == "upload"
    assert at.info  # waits for a file


def test_non_default_settings_explain_the_requested_class(open_page):
    at = open_page(
        "pages/cam.py",
        image="5",
        target="star",
        layer="block3",
        filter="bilateral",
        sigma="1.5",
        dominant="0.0",
        eps="40",
        combine="linear",
    )
    assert not at.exception and not at.error
    assert any("Explaining **star**" in m.value and "64 channels, 16×16" in m.value for m in at.markdown)
    assert explainer_values(at)["dominant channels"] == "0"


def test_other_explanations_panel(open_page):
    at = open_page("pages/cam.py", image="3")
    at.toggle(key="other").set_value(True).run()
    assert not at.exception and not at.error
    spec = json.loads(at.get("plotly_chart")[-1].proto.spec)
    assert [t["name"] for t in spec["data"] if t["type"] == "heatmap"] == [
        "Occlusion",
        "Integrated Gradients",
        "SmoothGrad",
    ]


def test_metrics_job_scores_every_method_above_the_random_floor():
    # The page file on its own: through the router + switch_page, AppTest did not deliver this button's click.
    at = AppTest.from_file(str(ROOT / "pages" / "cam.py"), default_timeout=120)
    at.query_params["n_metrics"] = "8"
    at.run()
    assert not at.exception
    at.button(key="cam-metrics-start").click().run()
    deadline = time.monotonic() + 180

    def table():
        return [d.value for d in at.dataframe if "method" in d.value.columns]

    while not table() and time.monotonic() < deadline:
        time.sleep(1.0)
        at.run()
    assert not at.exception and not at.error
    scores = table()[0].set_index("method")
    assert list(scores.index) == ["Grad-CAM", "Grad-CAM++", "Score-CAM", "CF-CAM", "random"]
    for method in ("Grad-CAM", "Score-CAM", "CF-CAM"):  # the maps look at the object; the random floor does not
        assert scores.loc[method, "ebpg"] > scores.loc["random", "ebpg"] + 0.05, method
        assert scores.loc[method, "deletion"] < scores.loc["random", "deletion"], method
