"""The one registry type behind methods, models, datasets, explainers and metrics."""

import pytest

from noisemod.registry import Registry


def test_a_registry_is_a_read_only_mapping_in_registration_order():
    reg = Registry("toy")
    assert reg.register("b", 2) == 2 and reg.register("a", 1) == 1
    assert list(reg) == reg.names() == ["b", "a"] and list(reg.values()) == [2, 1] and len(reg) == 2
    assert reg["a"] == 1 and "a" in reg and "c" not in reg and dict(reg) == {"b": 2, "a": 1}
    assert reg.get("c", None) is None and reg.get("a") == 1  # Mapping.get with a default
    with pytest.raises(KeyError):
        reg["c"]
    with pytest.raises(TypeError):
        reg["c"] = 3  # only register adds


def test_register_refuses_empty_and_taken_names_and_get_lists_the_registered():
    reg = Registry("toy")
    reg.register("a", 1)
    for name in ("a", "", None):
        with pytest.raises(ValueError, match=f"cannot register toy {name!r}: the name is empty or taken"):
            reg.register(name, 2)
    assert reg["a"] == 1
    reg.register("b", 2)
    with pytest.raises(ValueError, match="unknown toy 'c'; registered: a, b"):
        reg.get("c")


def test_unregister_takes_an_entry_away():
    reg = Registry("toy")
    reg.register("a", 1)
    assert reg.unregister("a") == 1 and "a" not in reg and reg.names() == []
    with pytest.raises(ValueError, match="unknown toy 'a'"):
        reg.unregister("a")
    reg.register("a", 3)  # the name is free again
    assert reg["a"] == 3


def test_a_check_holds_entries_before_and_after_it_to_a_rule():
    reg = Registry("toy")
    reg.register("one", 1)

    def positive(name, value):
        if value <= 0:
            raise ValueError(f"toy {name!r}: {value} is not positive")

    reg.add_check(positive)
    with pytest.raises(ValueError, match="toy 'zero': 0 is not positive"):
        reg.register("zero", 0)
    assert "zero" not in reg
    reg.register("two", 2)
    bad = Registry("toy")
    bad.register("minus", -1)
    with pytest.raises(ValueError, match="'minus'"):
        bad.add_check(positive)  # an entry registered before the check is held to it at once
