"""Saving a project never replaces another project file without asking: the save dialog confirms the name the
user typed, and when ``.qwbproj`` is added to it the file written is another one, so the window asks again."""

from __future__ import annotations

import pytest

from workbench.app.project import save_project
from workbench.app.workspace import Workspace

from .conftest import FakePrompter

pytestmark = pytest.mark.gui


@pytest.mark.parametrize("replace", [False, True])
def test_save_as_asks_before_replacing_the_project_the_suffix_names(make_window, tmp_path, replace):
    existing = tmp_path / "p.qwbproj"
    save_project(Workspace(), existing)
    before = existing.read_bytes()
    prompter = FakePrompter(save_path=str(tmp_path / "p"), replace_file=replace)
    w = make_window(prompter, show=False)
    w.ws.set_precision(["conv1"], "fp32")  # something for the saved project to differ in
    saved = w.save_project_as()
    assert "replace_file" in prompter.asked
    if replace:
        assert saved == existing and existing.read_bytes() != before
    else:
        assert saved is None and existing.read_bytes() == before


def test_save_as_to_a_new_name_asks_nothing_more(make_window, tmp_path):
    prompter = FakePrompter(save_path=str(tmp_path / "new"))
    w = make_window(prompter, show=False)
    assert w.save_project_as() == tmp_path / "new.qwbproj"
    assert "replace_file" not in prompter.asked
