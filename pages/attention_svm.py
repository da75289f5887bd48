"""Placeholder until the lab lands."""

from pages import _ui as ui

ui.header("attention_svm")
ui.placeholder()
