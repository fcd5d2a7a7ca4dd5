"""Mail parse stage: raw RFC 5322 bytes -> normalised, fully decoded mail.

Public API::

    from processor.mail import parse_mail, ParsedMail, Attachment
    from processor.mail.charset import normalize_charset, decode_bytes, decode_header
    from processor.mail.subject import fold, strip_prefixes, normalize_subject
    from processor.mail.subject import find_ticket_token, remove_ticket_token
    from processor.mail.quote import strip_quoted
    from processor.mail.html import html_to_text
"""

from .parse import Attachment, ParsedMail, parse_mail

__all__ = ["Attachment", "ParsedMail", "parse_mail"]
