#!/usr/bin/env python3
"""SMTP sink for the kg-tests harness.

Accepts every message (no TLS, no AUTH) and appends it to --out as one JSON line:
{"mail_from": ..., "rcpt_tos": [...], "data": "<raw message, UTF-8 with replacement>",
 "peer": "host:port", "received_at": <unix seconds>}.
The line is written and flushed before the client gets "250", so a sender that saw 250 can
read its message at once.

While the file given by --reject-flag exists, RCPT TO and DATA are answered with
"451 4.3.0" (a temporary failure), so tests can exercise the sender's retries.

--refuse-file names a JSON object {"<lower-cased address>": "<reply>"}, read again at every
RCPT TO: a recipient found in it gets that reply instead of "250", for example
"550 5.1.1 <text>" (a permanent refusal) or "450 4.2.1 Mailbox busy" (a temporary one). A
missing or unreadable file refuses nobody.

Prints "READY <host>:<port>" once listening; exits cleanly on SIGTERM or SIGINT.
Needs aiosmtpd (Debian python3-aiosmtpd or PyPI aiosmtpd).
"""

import argparse
import asyncio
import json
import os
import signal
import sys
import time

from aiosmtpd.smtp import SMTP


class Sink:
    def __init__(self, out_path, reject_flag, refuse_file):
        self.out_path = out_path
        self.reject_flag = reject_flag
        self.refuse_file = refuse_file

    def rejecting(self):
        return bool(self.reject_flag) and os.path.exists(self.reject_flag)

    def refusal(self, address):
        """The reply configured for this recipient in --refuse-file, or None."""
        if not self.refuse_file:
            return None
        try:
            with open(self.refuse_file, encoding="utf-8") as f:
                table = json.load(f)
        except (OSError, ValueError):
            return None
        if not isinstance(table, dict):
            return None
        if isinstance(address, bytes):
            address = address.decode("utf-8", errors="replace")
        reply = table.get(address.strip().strip("<>").lower())
        if not isinstance(reply, str):
            return None
        reply = " ".join(reply.split())  # one line
        if len(reply) < 3 or not reply[:3].isdigit():
            return None
        return reply

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        refusal = self.refusal(address)
        if refusal is not None:
            return refusal
        if self.rejecting():
            return "451 4.3.0 Temporarily rejected by the test switch"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.rejecting():
            return "451 4.3.0 Temporarily rejected by the test switch"
        content = envelope.content
        if isinstance(content, bytes):
            content = content.decode("utf-8", errors="replace")
        mail_from = envelope.mail_from
        if isinstance(mail_from, bytes):
            mail_from = mail_from.decode("utf-8", errors="replace")
        peer = session.peer
        record = {
            "mail_from": mail_from or "",
            "rcpt_tos": [
                r.decode("utf-8", errors="replace") if isinstance(r, bytes) else r
                for r in envelope.rcpt_tos
            ],
            "data": content or "",
            "peer": f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer),
            "received_at": time.time(),
        }
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with open(self.out_path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
        return "250 2.0.0 Message accepted for delivery"


async def serve(host, port, out_path, reject_flag, refuse_file):
    handler = Sink(out_path, reject_flag, refuse_file)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        # hostname given explicitly: the default does a (possibly slow) FQDN lookup
        lambda: SMTP(handler, hostname="kg-smtp-sink", enable_SMTPUTF8=True),
        host=host,
        port=port,
        reuse_address=True,
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"READY {host}:{port}", flush=True)
    await stop.wait()
    server.close()
    await server.wait_closed()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", required=True, help="JSON-lines file receiving messages")
    parser.add_argument("--reject-flag", default="", help="answer 451 while this file exists")
    parser.add_argument(
        "--refuse-file",
        default="",
        help='JSON {"address": "550 5.1.1 text"}: the reply to RCPT TO of those addresses',
    )
    args = parser.parse_args()
    try:
        asyncio.run(serve(args.host, args.port, args.out, args.reject_flag, args.refuse_file))
    except OSError as e:
        print(f"smtp_sink: cannot listen on {args.host}:{args.port}: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
