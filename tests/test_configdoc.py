"""docs/configuration.md is generated from the config model and must be current."""

from pathlib import Path

from gpuplace.configdoc import render

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def test_configuration_reference_is_generated_from_the_current_model():
    assert DOC.read_text() == render(), "regenerate: python -m gpuplace.configdoc > docs/configuration.md"


def test_reference_names_every_section():
    text = render()
    for section in ("checks", "severity", "catalog", "webhook", "extender"):
        assert f"## `{section}`" in text
