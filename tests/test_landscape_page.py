"""AppTest of the loss-landscape page: default view, non-default URL parameters, bad input shown as an error."""

from __future__ import annotations


def _no_exception(at) -> None:
    assert not at.exception, [e.value for e in at.exception]


def test_default_view_renders_surface_and_criteria(open_page) -> None:
    at = open_page("pages/landscape.py")
    _no_exception(at)
    assert not at.error, [e.value for e in at.error]
    labels = [m.label for m in at.metric]
    assert any("re" in x for x in labels) and any("tr H" in x for x in labels)


def test_hessian_axes_1d_slices_and_comparison(open_page) -> None:
    at = open_page(
        "pages/landscape.py", model="digits-mlp-sharp", compare="digits-mlp-flat", axes="Hessian (λmax, λmin)",
        view="1-D slices", n="15", extent="0.5", k="3",
    )
    _no_exception(at)
    assert not at.error, [e.value for e in at.error]
    assert len([m for m in at.metric if m.label.startswith("tr H")]) == 2


def test_eigen_pair_axes_with_log_scale(open_page) -> None:
    at = open_page("pages/landscape.py", axes="Hessian pair (i, j)", i="2", j="3", n="11", log="true")
    _no_exception(at)
    assert not at.error, [e.value for e in at.error]
