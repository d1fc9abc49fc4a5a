"""The README's claims that tests can hold it to."""

import re

from tests.conftest import REPO


def test_bad_input_table_names_tests_that_exist():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## What happens when"):readme.index("## Tests")]
    defined = {path.name: re.findall(r"^def (test_\w+)", path.read_text(), re.M)
               for path in (REPO / "tests").glob("test_*.py")}
    current, checked = None, 0
    for ref in re.findall(r"`([\w.]*::test_[\w*.]+)`", section):
        module, name = ref.split("::")
        current = module or current
        prefix = name.replace("...", "").replace("*", "")
        assert any(t.startswith(prefix) for t in defined[current]), ref
        checked += 1
    assert checked >= 25
