"""A real SMTP server for the notification tests (aiosmtpd on loopback).

Binds 127.0.0.1 on a free port, prints `READY <port>` once it listens, then
one JSON line per received message: envelope sender, recipients, the login
used (if any) and the raw message (bytes as Latin-1 code points). Exits when stdin closes, so it
never outlives the test that started it.
"""
import asyncio
import json
import logging
import socket
import sys
import warnings

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Handler:
    async def handle_DATA(self, server, session, envelope):
        login = session.auth_data.decode() if isinstance(session.auth_data, bytes) else None
        print(json.dumps({
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "login": login,
            # Latin-1 maps each byte to one code point: the raw bytes survive JSON.
            "data": (envelope.original_content or envelope.content).decode("latin-1"),
        }), flush=True)
        return "250 OK"


def authenticator(expected_user, expected_password):
    def check(server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword) and \
                auth_data.login.decode() == expected_user and \
                auth_data.password.decode() == expected_password:
            return AuthResult(success=True, auth_data=auth_data.login)
        return AuthResult(success=False, handled=False)
    return check


# Login without TLS is fine on loopback in a test; aiosmtpd warns about it.
warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
warnings.filterwarnings("ignore", message="Session.login_data is deprecated")
logging.getLogger("mail.log").setLevel(logging.ERROR)


async def main():
    user = sys.argv[1] if len(sys.argv) > 2 else None
    password = sys.argv[2] if len(sys.argv) > 2 else None
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    loop = asyncio.get_running_loop()

    def factory():
        kwargs = {"enable_SMTPUTF8": True}
        if user is not None:
            kwargs.update(authenticator=authenticator(user, password),
                          auth_required=True, auth_require_tls=False)
        return SMTP(Handler(), **kwargs)

    server = await loop.create_server(factory, sock=sock)
    print(f"READY {sock.getsockname()[1]}", flush=True)
    # Stop when the test closes our stdin (or dies).
    await loop.run_in_executor(None, sys.stdin.read)
    server.close()


asyncio.run(main())
