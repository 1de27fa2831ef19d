from __future__ import annotations

from pathlib import Path

import pytest

from placement.datafiles import bundled, entry_list, user_file


class Oops(ValueError):
    pass


def test_bundled_files_parse_with_their_origin() -> None:
    data, origin = bundled("gpus.yaml", Oops)
    assert origin == "placement/data/gpus.yaml"
    assert entry_list(data, "gpus", origin, Oops, also=("price_basis",))


def test_user_file_errors_name_the_file_and_the_reason(tmp_path: Path) -> None:
    with pytest.raises(Oops, match="cannot read"):
        user_file(tmp_path / "missing.yaml", Oops)
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [unclosed\n")
    with pytest.raises(Oops, match=f"{bad}: not valid YAML"):
        user_file(bad, Oops)


def test_entry_list_shapes() -> None:
    assert entry_list(None, "models", "f", Oops) == []
    assert entry_list([{"id": "a"}], "models", "f", Oops, bare_list=True) == [{"id": "a"}]
    with pytest.raises(Oops, match="expected a mapping with key 'models'"):
        entry_list([{"id": "a"}], "models", "f", Oops)
    with pytest.raises(Oops, match=r"unknown top-level field\(s\) \['extra'\]"):
        entry_list({"models": [], "extra": 1}, "models", "f", Oops)
    with pytest.raises(Oops, match="field 'models': expected a list, got dict"):
        entry_list({"models": {"a": 1}}, "models", "f", Oops)
