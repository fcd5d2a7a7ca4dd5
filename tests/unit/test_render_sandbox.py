"""The template sandbox: its remembered attribute checks refuse what Jinja2's
immutable sandbox refuses, the second time as the first."""
import pytest
from jinja2.exceptions import SecurityError

from processor.render import Renderer


@pytest.fixture()
def renderer(tmp_path):
    (tmp_path / "t.txt.j2").write_text("Subject: x\n\n{{ body }}\n", encoding="utf-8")
    return Renderer(tmp_path)


def _render(r: Renderer, source: str, **variables) -> str:
    return r.env.from_string(source).render(**variables)


@pytest.mark.parametrize("attempt", [1, 2])
def test_mutating_methods_are_refused_every_time(renderer, attempt):
    items, table = [1], {"a": 1}
    assert _render(renderer, "{{ items | length }} {{ table.get('a') }}", items=items, table=table) == "1 1"
    with pytest.raises(SecurityError):
        _render(renderer, "{{ items.append(2) }}", items=items)
    with pytest.raises(SecurityError):
        _render(renderer, "{{ table.update(b=2) }}", table=table)
    assert items == [1] and table == {"a": 1}


@pytest.mark.parametrize("attempt", [1, 2])
def test_internal_attributes_stay_out_of_reach(renderer, attempt):
    for source in ("{{ f.__globals__ }}", "{{ ''.__class__.__mro__ }}", "{{ f.__code__ }}"):
        with pytest.raises(SecurityError):
            _render(renderer, source, f=_render)


def test_safe_attributes_of_the_same_type_still_work(renderer):
    assert _render(renderer, "{{ s.upper() }}{{ s.split('-') | join('+') }}", s="a-b") == "A-B" + "a+b"
