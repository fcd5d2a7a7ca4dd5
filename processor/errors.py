"""Errors in the files an admin writes (config, directory, rules, templates,
holidays), and the Chinese reasons the loaders share.

``ConfigError`` carries (file, key, reason) triples; ``check`` and every
loader report them as ``file: key: reason``. This module imports nothing of
the package, so every loader can use it (``config.py`` re-exports it).
"""
from __future__ import annotations

import ast
import difflib
import re


class ConfigError(Exception):
    """A config, rule, template or directory file is wrong.

    ``problems`` is a list of (file, key, reason) triples.
    """

    def __init__(self, problems: list[tuple[str, str, str]]):
        self.problems = problems
        super().__init__("\n".join(f"{f}: {k}: {r}" if k else f"{f}: {r}" for f, k, r in problems))


# -- Chinese reasons shared by the config, directory and rule loaders ---------

def unknown_key_reason(key: str, known) -> str:
    """``未知的键（拼写错误？）``, with the closest known key or the known keys."""
    known = sorted(known)
    hint = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
    if hint:
        return f"未知的键（拼写错误？）：是不是 {hint[0]}？"
    return "未知的键（拼写错误？）" + (f"；这里可以写的键：{'、'.join(known)}" if known else "")


def not_utf8_reason(e: UnicodeDecodeError) -> str:
    return f"不是 UTF-8 编码的文本（第 {e.start} 字节：{e.reason}），请用 UTF-8 编码保存该文件"


_TOML_POS = re.compile(r"\s*\((?:at line (\d+), column (\d+)|at end of document)\)\s*$")
_TOML_MESSAGES = {
    "Invalid value": "值缺失或不合法（字符串要加引号，true/false 要小写）",
    "Invalid statement": "无法识别的语句",
    "Cannot overwrite a value": "这个键前面已经有值了，不能再写一次",
    "Expected '=' after a key in a key/value pair": "键后面缺少 =",
    "Expected ']' at the end of a table declaration": "表头缺少结尾的 ]",
    "Expected ']]' at the end of an array declaration": "表头缺少结尾的 ]]",
    "Expected newline or end of document after a statement": "一行只能写一个 键 = 值，后面不能再有别的内容",
    "Invalid initial character for a key part": "键的开头字符不合法（含空格或特殊字符的键要加引号）",
    "Unclosed array": "数组缺少结尾的 ]",
    "Unclosed inline table": "内联表缺少结尾的 }",
    "Unterminated string": "字符串缺少结尾的引号",
    "Invalid date or datetime": "日期或时间不合法",
    "Invalid hex value": "十六进制数值不合法",
    "Escaped character is not a Unicode scalar value": "转义字符不是合法的 Unicode 字符",
    "Unescaped '\\' in a string": "字符串中的 \\ 没有转义（写成 \\\\，或改用单引号字符串）",
}
_TOML_PATTERNS = (
    (re.compile(r"Cannot declare (.+) twice"), "表 {0} 声明了两次"),
    (re.compile(r"Cannot redefine namespace (.+)"), "不能重新定义 {0}"),
    (re.compile(r"Cannot mutate immutable namespace (.+)"), "不能修改已经写完的 {0}"),
    (re.compile(r"Duplicate inline table key (.+)"), "内联表中的键 {0} 重复"),
    (re.compile(r"Illegal character '\\n'"), "字符串缺少结尾的引号（普通字符串不能跨行）"),
    (re.compile(r"Illegal character (.+)"), "不允许的字符 {0}"),
    (re.compile(r"Found invalid character (.+)"), "不合法的字符 {0}"),
    (re.compile(r"Expected (.+)"), "此处应为 {0}"),
)


def toml_error_reason(e: Exception) -> str:
    """``TOML 语法错误：第 N 行第 M 列：…`` from a tomllib.TOMLDecodeError."""
    text = str(e)
    m = _TOML_POS.search(text)
    where = ""
    if m:
        text = text[: m.start()]
        where = f"第 {m.group(1)} 行第 {m.group(2)} 列：" if m.group(1) else "文件末尾："
    msg = _TOML_MESSAGES.get(text)
    if msg is None:
        for pat, cn in _TOML_PATTERNS:
            pm = pat.fullmatch(text)
            if pm:
                msg = cn.format(*(_toml_key(g) for g in pm.groups()))
                break
    return f"TOML 语法错误：{where}{msg or text}"


def _toml_key(text: str) -> str:
    """tomllib names keys as tuples, e.g. ``('smtp', 'port')``: write smtp.port."""
    try:
        parts = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
    if isinstance(parts, str):
        return parts
    if isinstance(parts, tuple) and all(isinstance(p, str) for p in parts):
        return ".".join(parts)
    return text
