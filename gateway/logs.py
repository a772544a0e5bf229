"""One JSON object per log line. Request fields come from `extra=`; credentials never get there.

Whoever writes a line, what looks like a credential is masked before it is written: aiohttp's own
parser, for one, quotes a malformed request line or header field in its error, Authorization
included."""

from __future__ import annotations

import logging
import re
import sys
import time

import orjson

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
_CREDENTIALS = re.compile(
    r"(?i:authorization)\s*:[^'\"\r\n]*"  # a quoted Authorization field line, whatever its scheme
    r"|ck_[0-9a-f]{32}_[A-Za-z0-9_-]*"  # an API key (or the start of one)
    r"|eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_.-]*"  # a JWT: its header is base64url JSON, `{"…` → `eyJ…`
    r"|(?i:bearer)\s+[^\s'\",]+"  # whatever follows Bearer
)
REDACTED = "[redacted]"


def redact(text: str) -> str:
    return _CREDENTIALS.sub(REDACTED, text)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        line |= {k: v for k, v in record.__dict__.items() if k not in _STANDARD}
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(
            {k: redact(v) if isinstance(v, str) else v for k, v in line.items()}, default=_text
        ).decode()


def _text(value: object) -> str:
    return redact(str(value))


def configure(level: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
