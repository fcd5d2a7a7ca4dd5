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

from .config import ConfigError

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
            raise ConfigError([(str(self.folder), "", "templates folder not found (paths.templates in the config)")])
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
                probs.append((str(path), "", f"not UTF-8 text ({e.reason})"))
                continue
            except TemplateError as e:
                probs.append((str(path), f"line {getattr(e, 'lineno', '?')}", f"template syntax error: {e}"))
                continue
            if path.name.endswith(".txt.j2") and not src.lstrip().startswith("Subject:"):
                probs.append((str(path), "line 1", "must start with 'Subject: ...' followed by a blank line and the body"))
        if not (self.folder / LAYOUT).is_file():
            probs.append((str(self.folder / LAYOUT), "", "missing: the HTML layout used for templates without NAME.html.j2"))
        return probs

    def render(self, name: str, variables: dict) -> Rendered:
        text_all = self.env.get_template(f"{name}.txt.j2").render(**variables)
        head, _, body = text_all.lstrip().partition("\n")
        if not head.startswith("Subject:"):
            raise ConfigError([(str(self.folder / f"{name}.txt.j2"), "line 1", "must start with 'Subject: ...'")])
        subject = " ".join(head[len("Subject:"):].split())
        text = body.strip("\n") + "\n"
        if (self.folder / f"{name}.html.j2").is_file():
            html = self.env.get_template(f"{name}.html.j2").render(**variables)
        else:
            html = self.env.get_template(LAYOUT).render({**variables, "subject": subject, "text": text})
        return Rendered(subject, text, html)
