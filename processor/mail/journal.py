"""Exchange journal reports (``X-MS-Journal-Report``): the journal agent's
envelope, whose body lists the original's envelope (``Sender:``,
``Subject:``, ``Message-Id:``, ``To:``…) and whose attachment is the
original message. The original is processed as from its real sender; the
envelope is what sender trust is judged on."""
from __future__ import annotations

import re
from dataclasses import dataclass

from .parse import ParsedMail

__all__ = ["JournalEnvelope", "is_journal_report", "unwrap_journal"]

_SENDER = re.compile(r"^\s*Sender\s*:\s*<?([^\s<>]+@[^\s<>]+)>?\s*$", re.M | re.I)


@dataclass(frozen=True)
class JournalEnvelope:
    from_addr: str  # the journal report's own From (the journal agent)
    sender: str  # the original's envelope sender, as the report lists it ("" if not listed)
    message_id: str | None  # the report's own Message-ID


def is_journal_report(mail: ParsedMail) -> bool:
    return mail.header("x-ms-journal-report") is not None


def unwrap_journal(mail: ParsedMail) -> tuple[ParsedMail, JournalEnvelope] | None:
    """(the enclosed original, the envelope), or None when ``mail`` is not a
    journal report or encloses no message."""
    if not is_journal_report(mail) or mail.attached is None or not mail.attached.from_addr:
        return None
    m = _SENDER.search(mail.text or "")
    env = JournalEnvelope(mail.from_addr, (m.group(1).lower() if m else ""), mail.message_id)
    original = mail.attached
    original.defects.append(f"unwrapped from an Exchange journal report ({mail.message_id or 'no Message-ID'})")
    return original, env
