"""The web pages' templates (``templates/web/*.html.j2``) as ``check`` sees them."""
from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, TemplateSyntaxError

PAGES = ("base", "login", "dashboard", "record", "search", "report", "missing")


def problems(folder: Path) -> list[tuple[str, str, str]]:
    """(file, key, reason) for a missing page or one that does not compile."""
    out = []
    env = Environment(loader=FileSystemLoader(str(folder)), autoescape=True)
    for name in PAGES:
        path = folder / f"{name}.html.j2"
        if not path.is_file():
            out.append((str(path), "", "缺少网页模板（run.py web 要用它）：可从软件自带的 templates/web/ 复制"))
            continue
        try:
            env.parse(path.read_text(encoding="utf-8"), path.name, str(path))
        except UnicodeDecodeError:
            out.append((str(path), "", "不是 UTF-8 编码的文本文件"))
        except TemplateSyntaxError as e:
            out.append((str(path), f"第 {e.lineno} 行", f"模板语法错误：{e.message}"))
    return out
