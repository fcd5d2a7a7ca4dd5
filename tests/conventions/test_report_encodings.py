"""Report mails as real clients send them: Outlook HTML tables, GB2312 with
GBK-only characters, Big5 (traditional characters), full-width and ASCII
colons, multi-line values."""
from __future__ import annotations

import pytest

from conventions.helpers import LI, SYSTEM, WANG, ZHANG, ZHAO, Flow, report_body, shape
from support import DIRECTORY

OUTLOOK_HTML = """<html xmlns:o="urn:schemas-microsoft-com:office:office"><head>
<meta http-equiv="Content-Type" content="text/html; charset={charset}">
<style><!-- p.MsoNormal {{margin:0cm;font-size:10.5pt;font-family:等线}} --></style></head>
<body lang="ZH-CN"><div class="WordSection1">
<p class="MsoNormal">李四：<o:p></o:p></p>
<p class="MsoNormal">今天远程处理情况如下：<o:p></o:p></p>
<table class="MsoTableGrid" border="1" cellspacing="0" cellpadding="0">
<tr><td width="120"><p class="MsoNormal"><b>沟通结果</b></p></td><td><p class="MsoNormal">问题遗留</p></td></tr>
<tr><td><p class="MsoNormal"><b>项目名称</b></p></td><td><p class="MsoNormal">华夏银行项目</p></td></tr>
<tr><td><p class="MsoNormal"><b>沟通人</b></p></td><td><p class="MsoNormal">{contact}</p></td></tr>
<tr><td><p class="MsoNormal"><b>沟通方式</b></p></td><td><p class="MsoNormal">远程（向日葵）</p></td></tr>
<tr><td><p class="MsoNormal"><b>沟通的具体问题</b></p></td><td><p class="MsoNormal">1. 解决vista下远程控制网络参数设置<br>2. 调整告警阈值为85%</p></td></tr>
<tr><td><p class="MsoNormal"><b>遗留的问题描述</b></p></td><td><p class="MsoNormal">客户要求出具巡检报告</p></td></tr>
</table>
<p class="MsoNormal">张三<o:p></o:p></p></div></body></html>"""


@pytest.fixture
def flow(tmp_path, imap_server, smtp_server, capsys):
    return Flow(tmp_path, imap_server, smtp_server, capsys)


@pytest.mark.parametrize("charset", ["utf-8", "gb2312"])
def test_outlook_html_table_report(flow, charset):
    # 镕 and 喆 are GBK-only: Outlook labels such mail gb2312 anyway.
    html = OUTLOOK_HTML.format(charset=charset, contact="朱镕（信息中心）、王喆")
    sent = flow.send(sender=ZHANG, to=(LI,), cc=(SYSTEM,), subject="回复: 客户沟通－华夏银行项目－张三",
                     html=html, charset=charset)
    assert shape(sent) == [((ZHANG,), ())]
    assert "已开《遗留问题跟进单》GJ2026-0001" in sent[0].text
    row = flow.tracking()[0]
    assert row["沟通人"] == "朱镕（信息中心）、王喆"
    assert row["沟通方式"] == "远程（向日葵）"
    assert row["沟通结果"] == "问题遗留"
    assert "解决vista下远程控制网络参数设置" in row["沟通的具体问题"] and "调整告警阈值为85%" in row["沟通的具体问题"]
    assert row["遗留的问题描述"] == "客户要求出具巡检报告"


def test_gb2312_plain_text_with_gbk_only_characters(flow):
    body = report_body(contact="镕基科技 喆总", issue="更换堃宇机房UPS的通信卡并恢复SNMP监控")
    sent = flow.send(sender=ZHANG, to=(LI,), cc=(SYSTEM,), subject="客户沟通-华夏银行-张三", body=body, charset="gb2312")
    assert shape(sent) == [((ZHANG,), ())]
    assert "沟通人：镕基科技 喆总" in sent[0].text
    row = flow.tracking()[0]
    assert (row["沟通人"], row["沟通的具体问题"]) == ("镕基科技 喆总", "更换堃宇机房UPS的通信卡并恢复SNMP监控")


def test_big5_traditional_report(tmp_path, imap_server, smtp_server, capsys):
    # A Hong Kong office writes traditional characters; admins add the traditional alias.
    directory = DIRECTORY.replace('aliases = ["华夏"]', 'aliases = ["华夏", "華夏銀行"]')
    f = Flow(tmp_path, imap_server, smtp_server, capsys, directory=directory)
    body = ("溝通結果：問題遺留\n項目名稱：華夏銀行\n溝通人：陳經理\n溝通方式：電話\n"
            "溝通的具體問題：解決網關雙機熱備切換失敗\n遺留的問題描述：需要研發提供補丁\n\n王五\n")
    sent = f.send(sender=WANG, to=(LI,), cc=(SYSTEM,), subject="回覆：客戶溝通－華夏銀行項目－王五", body=body, charset="big5")
    assert shape(sent) == [((WANG,), ()), ((ZHANG,), (ZHAO,))]
    row = f.tracking()[0]
    assert {k: row[k] for k in ("第一售前", "项目", "汇报人", "沟通人", "沟通结果", "沟通的具体问题", "遗留的问题描述")} == {
        "第一售前": "张三", "项目": "华夏银行", "汇报人": "王五", "沟通人": "陳經理", "沟通结果": "问题遗留",
        "沟通的具体问题": "解決網關雙機熱備切換失敗", "遗留的问题描述": "需要研發提供補丁"}
    assert f.ticket("GJ2026-0001")["state"] == "open"


def test_colons_full_width_ascii_and_spaced(flow):
    body = ("沟通结果: 成功\n项目名称 ： 华夏银行\n沟通人:李科长\n沟通方式：现场\n"
            "沟通的具体问题：\n  1. 升级防火墙固件到V5.6\n  2. 恢复IPSec隧道\n\n李四您好，以上。\n")
    sent = flow.send(sender=ZHANG, to=(LI,), cc=(SYSTEM,), subject="客户沟通：华夏银行-张三", body=body)
    assert shape(sent) == [((ZHANG,), ())]
    row = flow.tracking()[0]
    assert (row["沟通结果"], row["沟通人"], row["沟通方式"]) == ("成功", "李科长", "现场")
    assert row["沟通的具体问题"] == "1. 升级防火墙固件到V5.6\n2. 恢复IPSec隧道"


def test_quoted_history_is_not_read_as_the_report(flow):
    # A short reply quoting an earlier report must not be taken as that report.
    body = ("补充：客户晚上会再测试一次。\n\n"
            "-----原始邮件-----\n发件人: 张三\n主题: 客户沟通-华夏银行-张三\n\n" + report_body())
    sent = flow.send(sender=ZHANG, to=(LI,), cc=(SYSTEM,), subject="客户沟通-华夏银行-张三", body=body)
    assert shape(sent) == [((ZHANG,), ())]
    assert "汇报邮件未通过检查" in sent[0].subject
    assert flow.tracking() == []
