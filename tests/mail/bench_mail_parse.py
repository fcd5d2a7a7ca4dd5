"""Micro benchmark for parse_mail (not a test).

    python tests/mail/bench_mail_parse.py

Builds a typical ~2 KB Chinese reply (Received chain, RFC 2047 subject and
From, gb2312-labelled base64 body with quoted Outlook history) and reports the
mean time per parse_mail call, next to bare email.message_from_bytes.
"""

from __future__ import annotations

import base64
import email
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from processor.mail.parse import parse_mail  # noqa: E402


def typical_mail() -> bytes:
    subject = "回复：客户沟通-镕喆项目进展-张三"
    body = (
        "李经理，您好：\n\n"
        "关于贵司核心交换机间歇性丢包的问题，我们已完成现场排查，结论如下：\n"
        "1. 故障原因：上联光模块老化，收光功率偏低（-18.5dBm）。\n"
        "2. 处理措施：已更换光模块并清洁光纤接头，观察两小时无丢包。\n"
        "3. 后续建议：建议下季度对同批次光模块进行统一巡检。\n\n"
        "沟通结果：成功\n客户名称：镕喆科技有限公司\n联系人：王喆 13800000000\n\n"
        "如有疑问请随时联系。\n\n张三\n技术支持部\n\n"
        "-----原始邮件-----\n发件人: 李四 <lisi@customer.example>\n发送时间: 2024年1月2日 9:00\n"
        "收件人: tracking@company.example\n主题: 客户沟通-镕喆项目进展\n\n"
        "你好，核心交换机最近经常丢包，麻烦尽快安排工程师处理，谢谢。\n" * 1
    )
    enc = base64.b64encode(body.replace("\n", "\r\n").encode("gbk"))
    b64 = b"\r\n".join(enc[i:i + 76] for i in range(0, len(enc), 76))
    head = (
        "Received: from mail.company.example (mail.company.example [10.0.0.5])\r\n"
        "\tby mx.company.example (Postfix) with ESMTPS id 4T3k2L1abcz9sXY\r\n"
        "\tfor <tracking@company.example>; Tue, 2 Jan 2024 10:00:03 +0800 (CST)\r\n"
        "Received: from DESKTOP-ZS01 (unknown [10.0.8.23])\r\n"
        "\tby mail.company.example (Postfix) with ESMTPSA id 9F1E2A0123\r\n"
        "\tfor <tracking@company.example>; Tue, 2 Jan 2024 10:00:02 +0800 (CST)\r\n"
        "From: =?gb2312?B?1cXI/Q==?= <zhangsan@company.example>\r\n"
        "To: <tracking@company.example>\r\n"
        "Cc: =?gb2312?B?wO7LxA==?= <lisi@customer.example>\r\n"
        "Subject: " + "=?gb2312?B?" + base64.b64encode(subject.encode("gbk")).decode() + "?=\r\n"
        "Date: Tue, 2 Jan 2024 10:00:00 +0800\r\n"
        "Message-ID: <000001da3d2e$1a2b3c4d$5e6f7a8b@company.example>\r\n"
        "In-Reply-To: <orig-1@customer.example>\r\n"
        "References: <orig-0@customer.example> <orig-1@customer.example>\r\n"
        "MIME-Version: 1.0\r\n"
        "X-Mailer: Microsoft Outlook 16.0\r\n"
        "Thread-Index: AdoBcdEfGhIjKlMnOpQrStUvWxYz\r\n"
        "Content-Language: zh-cn\r\n"
        "Content-Type: text/plain; charset=\"gb2312\"\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n"
    ).encode("ascii")
    return head + b64 + b"\r\n"


def bench(fn, raw: bytes, n: int) -> float:
    for _ in range(200):
        fn(raw)
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            fn(raw)
        best = min(best, (time.perf_counter() - t0) / n)
    return best


def main() -> None:
    raw = typical_mail()
    m = parse_mail(raw)
    assert m.subject == "回复：客户沟通-镕喆项目进展-张三", m.subject
    assert "沟通结果：成功" in m.body and "原始邮件" not in m.body, m.body
    assert not m.defects, m.defects
    n = 3000
    t_std = bench(email.message_from_bytes, raw, n)
    t_ours = bench(parse_mail, raw, n)
    print(f"mail size: {len(raw)} bytes")
    print(f"email.message_from_bytes: {t_std * 1e3:.3f} ms/mail")
    print(f"parse_mail:               {t_ours * 1e3:.3f} ms/mail ({1 / t_ours:,.0f} mails/s)")


if __name__ == "__main__":
    main()
