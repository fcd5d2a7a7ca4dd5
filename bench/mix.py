"""A realistic mailbox for the benchmarks: what a tracking mailbox of a
support organisation receives in a day, in proportion.

- about 55 % 客户沟通 reports: most accepted, some 问题遗留 (a follow-up opens),
  some rejected for missing or vague fields, a few for an unknown project;
- about 15 % 投诉 complaints from the project's sales;
- about 20 % replies in record threads: the sales acknowledging a report,
  the 第一售前 saying 已解决 on a follow-up, a corrected report after a rejection;
- about 10 % machine mail (out-of-office), strangers and exact duplicates.

The directory has 24 engineers, 12 sales and 60 projects, so records and
counters spread as they would at a real site. Everything is deterministic for
a given seed.
"""
from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

from common import SUBMITTED
from support import make_mail

ENGINEERS = [f"售前{i:02d}" for i in range(24)]
SALES = [f"销售{i:02d}" for i in range(12)]
PROJECTS = [f"项目{i:02d}银行" for i in range(60)]


def _mail(i: int) -> str:
    return f"p{i}@company.example"


def mix_directory() -> str:
    out = []
    people = [(n, "售前") for n in ENGINEERS] + [(n, "销售") for n in SALES]
    for k, (name, role) in enumerate(people):
        out.append(f'[[people]]\nname = "{name}"\nemails = ["{_mail(k)}"]\nroles = ["{role}"]\n')
    out.append('[[people]]\nname = "赵经理"\nemails = ["zhao@company.example"]\nroles = ["售前经理", "售前"]\n')
    out.append('[[people]]\nname = "钱经理"\nemails = ["qian@company.example"]\nroles = ["技术支持部经理"]\n')
    out.append('[[people]]\nname = "孙总监"\nemails = ["sun@company.example"]\nroles = ["技术总监"]\n')
    for j, p in enumerate(PROJECTS):
        out.append(f'[[projects]]\nname = "{p}"\nsales = "{SALES[j % len(SALES)]}"\n'
                   f'presales1 = "{ENGINEERS[j % len(ENGINEERS)]}"\npresales2 = "{ENGINEERS[(j + 7) % len(ENGINEERS)]}"\n')
    return "\n".join(out)


def _addr(name: str) -> str:
    people = ENGINEERS + SALES
    return _mail(people.index(name))


REPORT = """沟通结果：{result}
项目名称：{project}
沟通人：客户信息中心 王工
沟通方式：{method}
沟通的具体问题：{issue}
遗留的问题描述：{remaining}

{name}
技术支持部
电话：010-12345678
"""
ISSUES = ["客户端升级到 5.2.{n} 后无法连接管理服务器，已指导客户修改防火墙策略并重新下发配置，验证正常。",
          "第{n}台终端的策略下发失败，远程查看日志后发现证书过期，已协助更新证书，策略恢复下发。",
          "客户反映报表导出缓慢，分析后确认数据库索引缺失，已协助重建索引，导出时间由 {n} 分钟降到 1 分钟内。"]


class _Box:
    def __init__(self, seed: int):
        self.rnd = random.Random(seed)
        self.seed = seed
        self.n = 0
        self.mails: list[bytes] = []
        self.reports: list[tuple[str, str, str, str]] = []  # (mid, engineer, sales, project) accepted
        self.open_reports: list[tuple[str, str, str]] = []  # (mid, engineer, project) with 问题遗留
        self.rejected: list[tuple[str, str, str, str]] = []  # (mid, engineer, sales, project)
        self.when = datetime(2026, 11, 2, 1, 0, tzinfo=timezone.utc)
        self.step = timedelta(minutes=1)  # between two mails' Date

    def mid(self) -> str:
        self.n += 1
        return f"<mix-{self.seed}-{self.n}@client.example>"

    def add(self, raw: bytes) -> None:
        self.mails.append(raw)
        self.when += self.step

    def put(self, *, sender: str, name: str, to, cc=(), subject: str, body: str, mid: str | None = None,
            irt: str | None = None, headers: dict | None = None) -> str:
        mid = mid or self.mid()
        self.add(make_mail(sender=sender, sender_name=name, to=tuple(to), cc=tuple(cc), subject=subject, body=body,
                           message_id=mid, in_reply_to=irt, headers={**SUBMITTED, **(headers or {})},
                           date=self.when))
        return mid

    # -- kinds ------------------------------------------------------------------
    def report(self) -> None:
        r = self.rnd
        j = r.randrange(len(PROJECTS))
        project, sales = PROJECTS[j], SALES[j % len(SALES)]
        engineer = ENGINEERS[j % len(ENGINEERS)] if r.random() < 0.8 else ENGINEERS[(j + 7) % len(ENGINEERS)]
        roll = r.random()
        result, remaining = "成功", "无"
        issue = r.choice(ISSUES).format(n=r.randint(1, 99))
        if roll < 0.15:
            result, remaining = "问题遗留", f"客户要求在下个版本中支持第{r.randint(1, 9)}类终端的批量升级，需研发评估。"
        subject_project = project
        body = REPORT.format(result=result, project=project, method=r.choice(["电话", "现场", "远程"]), issue=issue,
                             remaining=remaining, name=engineer)
        bad = roll > 0.85
        if bad:
            if r.random() < 0.5:
                body = body.replace("沟通方式：", "").replace("电话\n", "\n").replace("现场\n", "\n").replace("远程\n", "\n")
            else:
                body = body.replace(issue, "已处理")
        if roll > 0.97:
            subject_project = f"新客户{r.randint(1, 99)}"
        mid = self.put(sender=_addr(engineer), name=engineer, to=[_addr(sales)], cc=["tracking@company.example"],
                       subject=f"客户沟通-{subject_project}-{engineer}", body=body)
        if bad and subject_project == project:
            self.rejected.append((mid, engineer, sales, project))
        elif not bad and subject_project == project:
            self.reports.append((mid, engineer, sales, project))
            if result == "问题遗留":
                self.open_reports.append((mid, engineer, project))

    def complaint(self) -> None:
        r = self.rnd
        j = r.randrange(len(PROJECTS))
        project, sales = PROJECTS[j], SALES[j % len(SALES)]
        self.put(sender=_addr(sales), name=sales, to=["qian@company.example"], cc=["sun@company.example"],
                 subject=f"投诉-{project}项目沟通问题",
                 body=f"技术支持与客户沟通后既没有汇报邮件也没有电话说明。\n\n{sales}\n销售部")

    def reply(self) -> None:
        r = self.rnd
        roll = r.random()
        if roll < 0.25 and self.rejected:
            mid, engineer, sales, project = self.rejected.pop(r.randrange(len(self.rejected)))
            body = REPORT.format(result="成功", project=project, method="电话", issue=ISSUES[0].format(n=3),
                                 remaining="无", name=engineer)
            self.put(sender=_addr(engineer), name=engineer, to=["tracking@company.example"],
                     subject=f"Re: 客户沟通-{project}-{engineer}", body=body, irt=mid)
        elif roll < 0.45 and self.open_reports:
            mid, engineer, project = self.open_reports.pop(r.randrange(len(self.open_reports)))
            self.put(sender=_addr(engineer), name=engineer, to=["tracking@company.example"],
                     subject=f"Re: 客户沟通-{project}-{engineer}", body="已解决\n\n客户确认批量升级已可用。", irt=mid)
        elif self.reports:
            mid, engineer, sales, project = self.reports[r.randrange(len(self.reports))]
            self.put(sender=_addr(sales), name=sales, to=[_addr(engineer)], cc=["tracking@company.example"],
                     subject=f"回复：客户沟通-{project}-{engineer}", body="收到，谢谢。后续请继续跟进客户的升级计划。",
                     irt=mid)
        else:
            self.report()

    def other(self) -> None:
        r = self.rnd
        roll = r.random()
        if roll < 0.4:
            e = r.choice(ENGINEERS)
            self.put(sender=_addr(e), name=e, to=["tracking@company.example"], subject="自动回复：出差中",
                     body="我正在出差，邮件回复可能延迟。", headers={"Auto-Submitted": "auto-replied"})
        elif roll < 0.7:
            self.put(sender=f"someone{r.randint(1, 999)}@outside.example", name="陌生人",
                     to=["tracking@company.example"], subject="合作咨询", body="您好，想了解贵公司的产品。")
        elif self.mails:
            self.mails.append(self.mails[r.randrange(len(self.mails))])  # the same mail delivered twice
        else:
            self.report()


def mix_mails(n: int, seed: int = 1) -> list[bytes]:
    """n mails in the proportions of the module docstring."""
    box = _Box(seed)
    while len(box.mails) < n:
        roll = box.rnd.random()
        if roll < 0.55:
            box.report()
        elif roll < 0.70:
            box.complaint()
        elif roll < 0.90:
            box.reply()
        else:
            box.other()
    return box.mails[:n]
