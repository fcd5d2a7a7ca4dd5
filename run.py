#!/usr/bin/env python3
"""邮件工单处理器 — command line entry. See README.md."""
import sys

from processor.cli import main

if __name__ == "__main__":
    sys.exit(main())
