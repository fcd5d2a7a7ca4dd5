"""The demo's sample mails: realistic, in the shapes real clients send."""
from __future__ import annotations


def samples(mail) -> list[tuple[str, bytes]]:
    zhang = ("张三", "zhangsan@company.example")
    li = ("李四", "lisi@company.example")
    out = [
        ("系统测试邮件（工单测试）", mail(zhang, "工单测试", "看看系统是否正常。\n张三")),
        ("外部陌生人发来的邮件", mail(("陌生人", "someone@outside.example"), "工单测试", "你好")),
        ("休假自动回复（不应回复机器）", mail(li, "自动回复：客户沟通-华夏银行-张三", "我正在休假。",
                                    headers={"Auto-Submitted": "auto-replied"})),
        ("退信（不应回复机器）", mail(("Mail Delivery System", "mailer-daemon@company.example"), "Undelivered Mail Returned to Sender",
                               "This is the mail system.")),
    ]
    return out
