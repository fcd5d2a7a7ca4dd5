"""Real local mail servers for tests, the demo and benchmarks.

* :mod:`processor.devservers.imap` -- Dovecot (preferred) / pymap IMAP servers
* :mod:`processor.devservers.smtp` -- aiosmtpd capture server

Everything binds to a free loopback port and keeps its state in a temp dir.
"""
