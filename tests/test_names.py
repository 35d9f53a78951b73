from pathlib import Path

import pytest
from conftest import shared_path

from audio2blendshape.names import ARKIT, ARKIT_GROUPS, ARKIT_NAMES, Rig, UnknownBlendshapeError, to_pascal


def test_arkit_order_matches_the_reference_list():
    text = shared_path("formats", "README.md").read_text()
    block = text.split("canonical order", 1)[1].split("ARKit itself", 1)[0]
    listed = [w.strip(" ,\n") for w in block.split(")", 1)[1].replace("\n", " ").split(",")]
    assert tuple(n for n in listed if n) == ARKIT_NAMES


def test_52_unique_names_and_groups_cover_them_once():
    assert len(ARKIT_NAMES) == 52 == len(set(ARKIT_NAMES))
    grouped = [n for names in ARKIT_GROUPS.values() for n in names]
    assert sorted(grouped) == sorted(ARKIT_NAMES)
    assert ARKIT_GROUPS["jaw"] == ("jawForward", "jawLeft", "jawRight", "jawOpen")


def test_lookup_is_case_insensitive():
    assert ARKIT.index("jawOpen") == ARKIT.index("JawOpen") == ARKIT.index("JAWOPEN") == 17
    assert ARKIT.canonical("mouthclose") == "mouthClose"
    assert ARKIT.get("notAShape") is None
    with pytest.raises(UnknownBlendshapeError, match="jawOpn"):
        ARKIT.index("jawOpn")


def test_live_link_header_names_all_resolve():
    header = shared_path("formats", "live_link_face_header.csv").read_text().strip().split(",")
    shapes = header[2:54]
    assert {ARKIT.canonical(n) for n in shapes} == set(ARKIT_NAMES)
    assert [to_pascal(n) for n in ARKIT_NAMES if to_pascal(n) not in shapes] == []


def test_other_rigs_are_lists_of_names(tmp_path: Path):
    names_file = shared_path("data", "facegood", "blendshape_names.txt")
    rig = Rig.from_file(names_file)
    assert len(rig) == 116 and not rig.is_arkit and ARKIT.is_arkit
    assert rig.index("MOUTH_PUCKER_L") == rig.names.index("mouth_pucker_l")
    duplicate = tmp_path / "dup.txt"
    duplicate.write_text("jawOpen\nJawOpen\n")
    with pytest.raises(ValueError, match="twice"):
        Rig.from_file(duplicate)
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n\n")
    with pytest.raises(ValueError, match="no blendshape names"):
        Rig.from_file(empty)
