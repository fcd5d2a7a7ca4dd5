"""Templates: Jinja2 files in ``templates/``, rendered in a sandbox.

A template ``NAME`` is the file ``NAME.txt.j2``: its first line is
``Subject: ...``, then a blank line, then the plain-text body. An optional
``NAME.html.j2`` gives the HTML part (autoescaped); without it the HTML part is
the text body inside ``_layout.html.j2``. Mail content is passed in as data and
is never compiled as template source.
"""
from __future__ import annotations

import dataclasses
import difflib
import re
from dataclasses import dataclass
from html import escape
from pathlib import Path

from jinja2 import FileSystemLoader, StrictUndefined, TemplateError, TemplateSyntaxError, UndefinedError, meta, nodes
from jinja2 import select_autoescape
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .config import ConfigError, not_utf8_reason

LAYOUT = "_layout.html.j2"


@dataclass
class Rendered:
    subject: str
    text: str
    html: str | None  # None: to be laid out from the text (``Renderer.layout``) when the mail is built


_DICT_ATTRS = frozenset(dir(dict))


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja2's immutable sandbox, its attribute check remembered per
    (type, attribute name). The check (``is_internal_attribute`` and
    ``modifies_known_mutable``) depends on nothing else, and it ran for every
    ``x.y`` of every mail: a fifth of rendering."""

    def __init__(self, **options):
        super().__init__(**options)
        self._safe: dict[tuple[type, str], bool] = {}

    def getattr(self, obj, attribute):
        # ``ticket.number`` on a dict: Jinja tries the attribute first and
        # takes the item after an AttributeError. A dict has no attribute by
        # a name that is not one of its methods, so the item is the answer.
        if type(obj) is dict and attribute not in _DICT_ATTRS and attribute in obj:
            return obj[attribute]
        # A plain value (not a method: str.format needs the sandbox's wrapper)
        # that the remembered check allows.
        try:
            value = getattr(obj, attribute)
        except AttributeError:
            return super().getattr(obj, attribute)
        if not callable(value) and self.is_safe_attribute(obj, attribute, value):
            return value
        return super().getattr(obj, attribute)

    def is_safe_attribute(self, obj, attr: str, value) -> bool:
        key = (type(obj), attr)
        ok = self._safe.get(key)
        if ok is None:
            ok = self._safe[key] = super().is_safe_attribute(obj, attr, value)
        return ok


class Renderer:
    def __init__(self, folder: str | Path, kind_labels: dict[str, str] | None = None):
        """``kind_labels``: record kind -> its lifecycle's label (汇报, 投诉 …),
        shown beside the record number in the HTML part."""
        self.folder = Path(folder)
        self.kind_labels = dict(kind_labels or {})
        if not self.folder.is_dir():
            raise ConfigError([(str(self.folder), "", "找不到模板文件夹（路径由配置文件中的 paths.templates 指定）")])
        self._loaded: dict[str, tuple] = {}
        self.env = _Sandbox(
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
        """Compile every template; return (file, key, reason) problems:
        syntax errors, unknown filters and tests (in any branch), a missing
        Subject line or layout. Needs no variables (see ``strict_problems``)."""
        probs = []
        for path in sorted(self.folder.glob("*.j2")):
            try:
                src = path.read_text(encoding="utf-8")
                ast = self.env.parse(src, path.name, str(path))
            except UnicodeDecodeError as e:
                probs.append((str(path), "", not_utf8_reason(e)))
                continue
            except TemplateSyntaxError as e:
                probs.append((str(path), f"第 {e.lineno} 行", f"模板语法错误：{syntax_reason(e.message or '')}"))
                continue
            unknown = self._unknown_names(ast)
            probs += [(str(path), f"第 {line} 行", why) for line, why in unknown]
            if not unknown:
                try:
                    self.env.compile(src, path.name, str(path))
                except TemplateError as e:
                    probs.append((str(path), f"第 {getattr(e, 'lineno', '?')} 行", f"模板有误：{e}"))
            if path.name.endswith(".txt.j2") and not src.lstrip().startswith("Subject:"):
                probs.append((str(path), "第 1 行", "必须以 “Subject: 邮件主题” 开头，然后空一行，再写正文"))
        if not (self.folder / LAYOUT).is_file():
            probs.append((str(self.folder / LAYOUT), "", "缺少这个文件：没有 NAME.html.j2 的模板要用它生成 HTML 正文"))
        return probs

    def _unknown_names(self, ast: nodes.Template) -> list[tuple[int, str]]:
        """Filters and tests the environment lacks, first use of each; Jinja
        itself only fails on those in a branch that runs."""
        out, seen = [], set()
        for kind, cls, known in (("过滤器", nodes.Filter, self.env.filters), ("测试", nodes.Test, self.env.tests)):
            for node in ast.find_all(cls):
                if node.name in known or (kind, node.name) in seen:
                    continue
                seen.add((kind, node.name))
                close = difflib.get_close_matches(node.name, list(known), n=1)
                hint = f"是不是 {close[0]}？" if close else f"可用的{kind}见 Jinja2 文档（内置{kind}）"
                out.append((node.lineno, f"模板使用了未知的{kind} {node.name}；{hint}"))
        return sorted(out)

    def files(self, name: str) -> list[Path]:
        """The files rendering ``name`` reads: its text and HTML part (or the
        layout) and whatever they include."""
        todo = [f"{name}.txt.j2", f"{name}.html.j2" if (self.folder / f"{name}.html.j2").is_file() else LAYOUT]
        out: list[Path] = []
        while todo:
            p = self.folder / todo.pop(0)
            if p in out or not p.is_file():
                continue
            out.append(p)
            try:
                ast = self.env.parse(p.read_text(encoding="utf-8"))
            except (UnicodeDecodeError, TemplateSyntaxError):
                continue
            todo += [t for t in meta.find_referenced_templates(ast) if isinstance(t, str)]
        return out

    def strict_problems(self, name: str, samples: list[dict], *, passed: set[str] | None = None
                        ) -> list[tuple[str, str, str]]:
        """Problems of template ``name`` with the variables its callers pass:
        every name it reads in any branch must be one of ``passed`` (default:
        the first sample's keys), and it must render in strict mode with each
        sample. One line per problem, with the fix."""
        passed = set(samples[0]) if passed is None else passed
        avail = "、".join(sorted(passed))
        probs = []
        for path in self.files(name):
            known = LAYOUT_VARS if path.name == LAYOUT else passed
            ast = self.env.parse(path.read_text(encoding="utf-8"))
            for var in sorted(meta.find_undeclared_variables(ast) - known - set(self.env.globals)):
                line = min((n.lineno for n in ast.find_all(nodes.Name) if n.name == var and n.ctx == "load"), default="?")
                close = difflib.get_close_matches(var, list(known), n=1)
                probs.append((str(path), f"第 {line} 行", f"模板使用了未定义的变量 {var}"
                              + (f"，是不是 {close[0]}？" if close else "。")
                              + f"这个模板可用的变量：{'、'.join(sorted(known))}"))
        if probs:
            return probs
        for variables in samples:
            try:
                self.render(name, variables)
            except UndefinedError as e:
                return [self._undefined_problem(name, e, variables, avail)]
            except ConfigError as e:
                return e.problems
            except Exception as e:  # noqa: BLE001 - any failure with realistic data is the admin's to fix
                path, line = _template_frame(e, str(self.folder / f"{name}.txt.j2"))
                return [(path, f"第 {line} 行", f"用示例数据试渲染时出错：{type(e).__name__}: {e}")]
        return []

    def _undefined_problem(self, name: str, e: UndefinedError, variables: dict, avail: str) -> tuple[str, str, str]:
        path, line = _template_frame(e, str(self.folder / f"{name}.txt.j2"))
        msg = str(e.message or "")
        attr = msg.rsplit(" ", 1)[-1].strip("'\"") if (" has no attribute " in msg or " has no element " in msg) else None
        if attr is None:
            m = re.match(r"'(\w+)' is undefined", msg)
            var = m[1] if m else msg
            return (path, f"第 {line} 行", f"有些邮件不带变量 {var}（只在某些情况下才有），"
                    f"请用 {{% if {var} is defined %}}…{{% endif %}} 包住用到它的地方。这个模板可用的变量：{avail}")
        expr, keys = attr, []
        try:
            ast = self.env.parse(Path(path).read_text(encoding="utf-8"))
            for n in ast.find_all((nodes.Getattr, nodes.Getitem)):
                key = n.attr if isinstance(n, nodes.Getattr) else getattr(n.arg, "value", None)
                if key == attr and (line == "?" or n.lineno == line):
                    base = _dotted(n.node)
                    expr = f"{base}.{attr}" if base else attr
                    keys = _attributes(_lookup(variables, base)) if base else []
                    break
        except (OSError, UnicodeDecodeError, TemplateSyntaxError):
            pass
        base, _, _ = expr.rpartition(".")
        return (path, f"第 {line} 行", f"模板使用了 {expr}，但 {base or '这个值'} 没有 {attr} 这一项"
                + (f"，可用的有：{'、'.join(keys)}" if keys else "，请检查拼写"))

    def _templates(self, name: str):
        """The text template of ``name`` and its HTML one (None: the layout),
        looked up once (templates change on reload, which makes a new Renderer)."""
        pair = self._loaded.get(name)
        if pair is None:
            html = self.folder / f"{name}.html.j2"
            pair = self._loaded[name] = (self.env.get_template(f"{name}.txt.j2"),
                                         self.env.get_template(html.name) if html.is_file() else None)
        return pair

    def render(self, name: str, variables: dict, *, lay_out: bool = True) -> Rendered:
        """The mail of template ``name``. ``lay_out`` False: a template
        without an HTML file of its own leaves ``html`` None, for
        :meth:`layout` to draw when the mail is built (by the sender)."""
        text_tpl, html_tpl = self._templates(name)
        text_all = text_tpl.render(**variables)
        head, _, body = text_all.lstrip().partition("\n")
        if not head.startswith("Subject:"):
            raise ConfigError([(str(self.folder / f"{name}.txt.j2"), "第 1 行", "必须以 “Subject: 邮件主题” 开头")])
        subject = " ".join(head[len("Subject:"):].split())
        text = body.strip("\n") + "\n"
        if html_tpl is not None:
            html = html_tpl.render(**variables)
        elif lay_out:
            html = self.layout(subject, text, *self.record(variables), system=variables.get("system"))
        else:
            html = None
        return Rendered(subject, text, html)

    def record(self, variables: dict) -> tuple[str, str]:
        """The number of the record a mail is about ("" for none) and its
        kind's label (汇报, 投诉 …), which the layout shows beside it."""
        t = variables.get("ticket")
        number = (t.get("number") if isinstance(t, dict) else getattr(t, "number", None)) or ""
        kind = (t.get("kind") if isinstance(t, dict) else getattr(t, "kind", None)) or ""
        return str(number), (self.kind_labels.get(kind, "") if number else "")

    def layout(self, subject: str, text: str, number: str = "", record_kind: str = "", system=None) -> str:
        """The HTML part of a mail laid out from its text (``_layout.html.j2``,
        which reads only ``LAYOUT_VARS``: ``system`` is the configuration's
        [system] table)."""
        return self.env.get_template(LAYOUT).render(layout_vars(subject, text, number, record_kind), system=system)


def plain_layout(text: str) -> str:
    """An HTML part with the text as it is: what a mail is sent with when
    its layout cannot be drawn (a template broken after it was queued)."""
    return f'<html><body><pre style="white-space: pre-wrap; font-family: sans-serif;">{escape(text)}</pre></body></html>'


# -- the HTML part from the text -------------------------------------------------
#
# The text part is complete on its own; the HTML part shows the same words
# laid out: the record number in a header band, runs of ``  标签：值`` lines
# as a table, the action to take (what to reply) set apart, lists as lists.
# The layout template draws them with tables and inline styles only, which is
# what Outlook's Word engine renders faithfully.

# What the layout may read: it draws every mail, including those the sender
# builds from their drafts, where no template's variables are at hand.
LAYOUT_VARS = {"subject", "text", "blocks", "number", "replies", "record_kind", "system"}
_FIELD = re.compile(r"^(\s{2,})(?![-•\d])([^：:\s][^：:]{0,19})[：:]\s?(.*)$")
_ITEM = re.compile(r"^\s*(?:[-•]|\d+[.、])\s+")
_ACTION = re.compile(r"请尽快|请督促|回复本邮件|第一行写|第一行只写|在回复邮件的第一行|请在.{0,12}回复")


def _fields(lines: list[str]) -> list[tuple[str, str]] | None:
    """The rows of a block of ``  标签：值`` lines, a value going on over
    the lines below it that are not fields (an indented list, a wrapped
    line); None when the block is not such a run."""
    first = _FIELD.match(lines[0])
    if first is None:
        return None
    base = len(first.group(1))
    rows: list[list[str]] = []
    for ln in lines:
        m = _FIELD.match(ln)
        if m is not None and len(m.group(1)) == base:
            rows.append([m.group(2).strip(), m.group(3).strip()])
        else:
            rows[-1][1] = (rows[-1][1] + "\n" + ln.strip()).strip("\n")
    if len(rows) < 2 and len(lines) > 1:
        return None
    return [(k, v) for k, v in rows]


def _block_kind(lines: list[str]) -> str:
    if lines[0].startswith("—— "):
        return "sign"
    if all(_ITEM.match(ln) for ln in lines if ln.strip()) or all(ln.startswith("  ") for ln in lines):
        return "list"
    return "action" if any(_ACTION.search(ln) for ln in lines) else "para"


def layout_vars(subject: str, text: str, number: str = "", record_kind: str = "") -> dict:
    """What ``_layout.html.j2`` draws: ``blocks`` (``kind``: para | fields |
    list | action | sign, with ``lines`` or ``rows`` of (label, value)), the
    record ``number`` ("" for a mail about no record) and its ``record_kind``
    (the lifecycle's label), and ``replies``: does a reply to this mail do
    anything (it goes into the record's thread)."""
    blocks: list[dict] = []
    for raw in re.split(r"\n\s*\n", text.strip("\n")):
        lines = [ln.rstrip() for ln in raw.split("\n") if ln.strip()]
        if not lines:
            continue
        rows = _fields(lines)
        if rows is None and len(lines) >= 2 and lines[0].rstrip().endswith(("：", ":")) \
                and not _ACTION.search(lines[0]) and _fields(lines[1:]) is not None:
            # 「以下几行……：」 over a run of 标签：值 lines: the heading, then the table.
            blocks.append({"kind": "para", "lines": [lines[0].strip()]})
            lines = lines[1:]
            rows = _fields(lines)
        kind = "fields" if rows is not None else _block_kind(lines)
        prev = blocks[-1] if blocks else None
        if prev is not None and prev["kind"] == "action" and len(lines) <= 2 and sum(map(len, lines)) <= 40 \
                and kind in ("para", "list"):
            kind = "action"  # the keyword line under "第一行写：" belongs to the action
        if kind == "fields":
            blocks.append({"kind": kind, "rows": rows})
        elif kind == "list":
            blocks.append({"kind": kind, "lines": [_ITEM.sub("", ln).strip() for ln in lines]})
        else:
            blocks.append({"kind": kind, "lines": [ln.strip() for ln in lines]})
    return {"subject": subject, "text": text, "blocks": blocks, "number": str(number), "replies": bool(number),
            "record_kind": record_kind}


def syntax_reason(msg: str) -> str:
    """Jinja's syntax error message, said in Chinese with the fix."""
    block = re.search(r"innermost block that needs to be closed is '(\w+)'", msg)
    close = f"{{% {block[1]} %}} 没有对应的 {{% end{block[1]} %}}" if block else ""
    if re.match(r"unexpected end of template", msg, re.I):
        return close + "，请补上" if close else "模板在这里意外结束：{{ 要用 }} 结束，{% 要用 %} 结束"
    if m := re.match(r"Encountered unknown tag '(\w+)'", msg):
        return f"未知的标签 {{% {m[1]} %}}" + (f"（{close}，或者标签拼错了）" if close else "，请检查拼写或删除它")
    if m := re.match(r"unexpected '(.+)'$", msg):
        return f"这里多了 “{m[1]}”：{{{{ }}}} 和 {{% %}} 要成对"
    if m := re.match(r"expected token '(.+)', got '(.+)'$", msg):
        return f"这里不应出现 “{m[2]}”（Jinja：{msg}）"
    return f"{msg}（请检查 {{{{ }}}} 和 {{% %}} 是否成对）"


def _template_frame(e: BaseException, default: str) -> tuple[str, int | str]:
    """The template file and line where ``e`` was raised (Jinja maps its
    frames back to template lines)."""
    found: tuple[str, int | str] = (default, "?")
    tb = e.__traceback__
    while tb is not None:
        fn = tb.tb_frame.f_code.co_filename
        if fn.endswith(".j2"):
            found = (fn, tb.tb_lineno)
        tb = tb.tb_next
    return found


def _dotted(node) -> str | None:
    """``record.data.remaining`` for a chain of Name/Getattr nodes."""
    if isinstance(node, nodes.Name):
        return node.name
    if isinstance(node, nodes.Getattr):
        base = _dotted(node.node)
        return f"{base}.{node.attr}" if base else None
    return None


def _attributes(obj) -> list[str]:
    """What a template can read from ``obj``: a dict's keys, a record's
    columns, a dataclass's or settings model's fields, and properties."""
    if obj is None:
        return []
    if isinstance(obj, dict):
        return sorted(map(str, obj))
    names = set()
    if dataclasses.is_dataclass(obj):
        names |= {f.name for f in dataclasses.fields(obj)}
    names |= set(getattr(type(obj), "model_fields", {}))
    table = getattr(obj, "__table__", None)
    if table is not None:
        names |= {c.key for c in table.columns}
    names |= {n for k in type(obj).__mro__ for n, v in vars(k).items() if isinstance(v, property)}
    return sorted(n for n in names if not n.startswith("_"))


def _lookup(variables: dict, dotted: str):
    obj = variables
    for part in dotted.split("."):
        obj = obj.get(part) if isinstance(obj, dict) else getattr(obj, part, None)
        if obj is None:
            return None
    return obj
