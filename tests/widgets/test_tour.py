"""The guided tour: five steps, each setting the dashboard's state through its presets and
settings; Back / Next; the last step ends in the sandbox with the state kept."""

import pytest

from dnc_interactive.widgets import Dashboard
from dnc_interactive.widgets import probe as probes
from dnc_interactive.widgets.presets import get_preset
from dnc_interactive.widgets.tour import STEPS

#: What each step's config is (a few values that tell the story).
EXPECTED = [
    {"num_classes": 2, "depth": 4, "lambda_H": 1e-3, "samples_per_class": 50},
    {"num_classes": 2, "depth": 6, "lambda_H": 1e-3},
    {"num_classes": 2, "depth": 4, "lambda_H": 0.08, "lambda_W": 0.08},
    {"samples_per_class": (95, 5), "depth": 3, "lambda_H": 0.0105},
    {"num_classes": 10, "depth": 4, "width": 30, "lambda_H": 4e-3},
]


@pytest.fixture(autouse=True)
def _no_background_srg(monkeypatch):
    """The K = 10 step would optimise the SRG family on a daemon thread, still running torch
    when the test process ends; the tour does not need it."""
    monkeypatch.setattr(probes, "OPTIMISE_LOWRANK", False)


def _check(d, i):
    cfg = d.config
    for name, value in EXPECTED[i].items():
        got = getattr(cfg, name)
        assert got == pytest.approx(value) if isinstance(value, float) else got == value, (
            i,
            name,
            got,
        )
    assert d.tour.index == i and d.tour.widget.layout.display == "flex"
    assert f"Tour {i + 1} / 5" in d.tour.text.value
    text = STEPS[i].text
    assert text.count(". ") + text.count("). ") >= 1  # two sentences (or three)


def test_tour_steps_set_their_state_with_back_and_next():
    d = Dashboard(tour=True)
    assert len(STEPS) == 5
    _check(d, 0)
    assert d.tour.back_button.disabled
    for i in range(1, 5):
        d.tour.next_button.click()
        _check(d, i)
    assert d.tour.next_button.description == "Sandbox"
    d.tour.back_button.click()
    _check(d, 3)
    d.tour.back_button.click()
    _check(d, 2)
    assert "zero solution" in d.status or "threshold" in d.status
    d.run(200)  # a step's state plays like any other
    d.tour.next_button.click()
    d.tour.next_button.click()
    _check(d, 4)
    assert d.controls["preset"].value == get_preset(STEPS[4].preset).name
    d.tour.next_button.click()  # the end: the sandbox, state kept
    assert not d.tour.active and d.tour.widget.layout.display == "none"
    assert d.config.num_classes == 10
    d.set(depth=3)  # every control is the student's again
    assert d.config.depth == 3 and not d.tour.active
    d.close()


def test_tour_button_and_the_lecture_layout():
    d = Dashboard(layout="lecture")
    assert not d.tour.active and d.tour.widget.layout.display == "none"
    d.controls["tour"].click()
    _check(d, 0)
    d.tour.close_button.click()
    assert not d.tour.active
    with pytest.raises(ValueError, match="index=7 is not valid"):
        d.tour.start(7)
    q = Dashboard.from_query("tour=1")
    assert q.tour.active and q.tour.index == 0
    d.close()
    q.close()
