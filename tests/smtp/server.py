"""A real SMTP server for msr's tests (aiosmtpd), and a stalling one.

    server.py --port N --dir DIR [--auth USER:PASSWORD] [--delay SECONDS]
        accepts every message (answering DATA after SECONDS, with --delay)
        and writes it to DIR as <n>.json:
        {"mail_from", "rcpt_tos", "subject", "body" (decoded), "raw",
        "auth_user"}; with --auth it
        refuses mail until the client authenticates with those credentials
        (AUTH PLAIN/LOGIN, without TLS: a local test).
    server.py ... --tls-cert CERT --tls-key KEY [--implicit-tls]
        requires STARTTLS before anything else, or with --implicit-tls
        speaks TLS from the first byte (SMTPS).
    server.py --port N --stall
        accepts connections and never answers, like a server that hangs.

Prints "ready" on stdout once it listens.
"""

import argparse
import asyncio
import email
import email.policy
import itertools
import json
import logging
import os
import socket
import ssl
import time
import warnings

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Store:
    def __init__(self, directory, delay):
        self.directory = directory
        self.delay = delay
        self.numbers = itertools.count()

    async def handle_DATA(self, server, session, envelope):
        await asyncio.sleep(self.delay)
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        login = session.auth_data.login.decode() if session.auth_data else None
        message = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "subject": parsed["subject"],
            "body": parsed.get_content(),
            "raw": envelope.content.decode("utf-8", "replace"),
            "auth_user": login,
        }
        path = os.path.join(self.directory, f"{next(self.numbers):04}.json")
        with open(path + ".tmp", "w") as out:
            json.dump(message, out)
        os.rename(path + ".tmp", path)
        return "250 2.0.0 Ok: queued as msr-test"


def authenticator(user, password):
    def check(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == user
            and auth_data.password.decode() == password
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    return check


def stall(port):
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(16)
    print("ready", flush=True)
    held = []
    while True:
        connection, _ = listener.accept()
        held.append(connection)


def main():
    # aiosmtpd warns that AUTH without TLS is unsafe, which a local test means.
    warnings.simplefilter("ignore")
    logging.getLogger("mail.log").setLevel(logging.CRITICAL)
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir")
    parser.add_argument("--auth")
    parser.add_argument("--stall", action="store_true")
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--implicit-tls", action="store_true")
    parser.add_argument("--delay", type=float, default=0)
    args = parser.parse_args()
    if args.stall:
        stall(args.port)
        return
    options = {}
    if args.auth:
        user, password = args.auth.split(":", 1)
        options = dict(
            authenticator=authenticator(user, password),
            auth_required=True,
            auth_require_tls=False,
        )
    if args.tls_cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        if args.implicit_tls:
            options["ssl_context"] = context
        else:
            options.update(tls_context=context, require_starttls=True)
    controller = Controller(
        Store(args.dir, args.delay), hostname="127.0.0.1", port=args.port, **options
    )
    controller.start()
    print("ready", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
