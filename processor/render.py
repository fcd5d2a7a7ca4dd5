"""Templates: Jinja2 files in ``templates/``, rendered in a sandbox.

A template ``NAME`` is the file ``NAME.txt.j2``: its first line is
``Subject: ...``, then a blank line, then the plain-text body. An optional
``NAME.html.j2`` gives the HTML part (autoescaped); without it the HTML part is
the text body inside ``_layout.html.j2``. Mail content is passed in as data and
is never compiled as template source.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from jinja2 import FileSystemLoader, StrictUndefined, TemplateError, select_autoescape
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .config import ConfigError, not_utf8_reason

LAYOUT = "_layout.html.j2"


@dataclass
class Rendered:
    subject: str
    text: str
    html: str


class Renderer:
    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise ConfigError([(str(self.folder), "", "找不到模板文件夹（路径由配置文件中的 paths.templates 指定）")])
        self.env = ImmutableSandboxedEnvironment(
            loader=FileSystemLoader(str(self.folder)),
            autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False, default=False),
            undefined=StrictUndefined,
            auto_reload=False,
            keep_trailing_newline=False,
            trim_blocks=True,
            lstrip_blocks=True,
        )

    def names(self) -> list[str]:
        return sorted(p.name[: -len(".txt.j2")] for p in self.folder.glob("*.txt.j2"))

    def exists(self, name: str) -> bool:
        return (self.folder / f"{name}.txt.j2").is_file()

    def check(self) -> list[tuple[str, str, str]]:
        """Compile every template; return (file, key, reason) problems."""
        probs = []
        for path in sorted(self.folder.glob("*.j2")):
            try:
                src = path.read_text(encoding="utf-8")
                self.env.parse(src)
            except UnicodeDecodeError as e:
                probs.append((str(path), "", not_utf8_reason(e)))
                continue
            except TemplateError as e:
                probs.append((str(path), f"第 {getattr(e, 'lineno', '?')} 行", f"模板语法错误：{e}"))
                continue
            if path.name.endswith(".txt.j2") and not src.lstrip().startswith("Subject:"):
                probs.append((str(path), "第 1 行", "必须以 “Subject: 邮件主题” 开头，然后空一行，再写正文"))
        if not (self.folder / LAYOUT).is_file():
            probs.append((str(self.folder / LAYOUT), "", "缺少这个文件：没有 NAME.html.j2 的模板要用它生成 HTML 正文"))
        return probs

    def render(self, name: str, variables: dict) -> Rendered:
        text_all = self.env.get_template(f"{name}.txt.j2").render(**variables)
        head, _, body = text_all.lstrip().partition("\n")
        if not head.startswith("Subject:"):
            raise ConfigError([(str(self.folder / f"{name}.txt.j2"), "第 1 行", "必须以 “Subject: 邮件主题” 开头")])
        subject = " ".join(head[len("Subject:"):].split())
        text = body.strip("\n") + "\n"
        if (self.folder / f"{name}.html.j2").is_file():
            html = self.env.get_template(f"{name}.html.j2").render(**variables)
        else:
            html = self.env.get_template(LAYOUT).render({**variables, "subject": subject, "text": text})
        return Rendered(subject, text, html)
