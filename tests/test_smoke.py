from registry import ThreadRegistry


def test_forward_and_answer(reg: ThreadRegistry) -> None:
    root = reg.initialize_root("acme")
    a = reg.extend_chain(root, "console")
    b = reg.extend_chain(a, "calculator.add")
    assert reg.lookup(b) == "system.acme.console.calculator.add"
    assert reg.prune_for_response(b) == ("console", a)
