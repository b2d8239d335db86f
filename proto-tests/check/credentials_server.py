"""A rotating credentials server for the credential-chain proto-tests (proto-tests/credentials.rs).

It plays EC2's instance metadata service (IMDSv2: `PUT /latest/api/token`, then the role's credentials under
`/latest/meta-data/iam/security-credentials/`) and ECS's container-credentials endpoint (`GET /ecs`), and hands
out MinIO credentials that it rotates every --period seconds: each rotation makes a new MinIO user (readwrite
policy) and asks MinIO's STS (AssumeRole) for temporary credentials of it; --revoke-after seconds later it removes
the user before, which makes MinIO refuse that user's credentials. The Expiration it reports is when a set stops
working (next rotation + revoke-after), as IMDS reports a set's real expiry; with --report-late it reports an hour
ahead instead, so a client only learns of a rotation from a refused request.

Events go to stderr, one line each: `listening on 127.0.0.1:PORT`, `rotation N KEY`, `revoked N KEY`.
MinIO's root credentials and endpoint come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL.
"""

import argparse
import datetime
import http.server
import json
import os
import secrets
import sys
import threading
import time

from minio import MinioAdmin
from minio.credentials import AssumeRoleProvider, StaticProvider

ROLE = "ticklake-test-role"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class Rotation:
    def __init__(self, endpoint, period, revoke_after, report_late):
        self.endpoint = endpoint
        self.period, self.revoke_after, self.report_late = period, revoke_after, report_late
        root = StaticProvider(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])
        self.admin = MinioAdmin(endpoint=endpoint.split("://", 1)[1], credentials=root, secure=False)
        self.prefix = f"tl{secrets.token_hex(3)}"
        self.lock = threading.Lock()
        self.current = None
        self.n = 0

    def rotate(self):
        """A new MinIO user and STS credentials for it; returns the previous user."""
        self.n += 1
        user, secret = f"{self.prefix}u{self.n}", secrets.token_hex(16)
        self.admin.user_add(user, secret)
        self.admin.policy_set("readwrite", user=user)
        creds = AssumeRoleProvider(sts_endpoint=self.endpoint, access_key=user, secret_key=secret,
                                   duration_seconds=3600).retrieve()
        now = datetime.datetime.now(datetime.timezone.utc)
        ends = now + datetime.timedelta(seconds=3600 if self.report_late else self.period + self.revoke_after)
        with self.lock:
            previous = self.current
            self.current = {"user": user, "AccessKeyId": creds.access_key, "SecretAccessKey": creds.secret_key,
                            "Token": creds.session_token, "Expiration": ends.strftime("%Y-%m-%dT%H:%M:%SZ"),
                            "LastUpdated": now.strftime("%Y-%m-%dT%H:%M:%SZ")}
        log(f"rotation {self.n} {creds.access_key}")
        return previous

    def run(self):
        while True:
            time.sleep(self.period)
            previous, n = self.rotate(), self.n - 1
            threading.Timer(self.revoke_after, self.revoke, args=(previous, n)).start()

    def revoke(self, previous, n):
        self.admin.user_remove(previous["user"])
        log(f"revoked {n} {previous['AccessKeyId']}")

    def document(self):
        with self.lock:
            c = dict(self.current)
        c.pop("user")
        return c


def handler(rotation):
    tokens = set()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def answer(self, code, body, kind="text/plain", headers=()):
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", kind)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_PUT(self):
            if self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                token = secrets.token_hex(16)
                tokens.add(token)
                ttl = self.headers["X-aws-ec2-metadata-token-ttl-seconds"]
                return self.answer(200, token, headers=[("X-aws-ec2-metadata-token-ttl-seconds", ttl)])
            self.answer(400, "bad request")

        def do_GET(self):
            if self.path == "/ecs":
                doc = rotation.document()
                doc["RoleArn"] = f"arn:aws:iam::000000000000:role/{ROLE}"
                return self.answer(200, json.dumps(doc), "application/json")
            if not self.path.startswith("/latest/"):
                return self.answer(404, "not found")
            # IMDSv2 only: a request without a session token is refused, as on an instance with v1 off.
            if self.headers.get("X-aws-ec2-metadata-token") not in tokens:
                return self.answer(401, "unauthorized")
            if self.path == "/latest/meta-data/iam/security-credentials/":
                return self.answer(200, ROLE)
            if self.path == f"/latest/meta-data/iam/security-credentials/{ROLE}":
                doc = rotation.document()
                doc.update(Code="Success", Type="AWS-HMAC")
                return self.answer(200, json.dumps(doc), "application/json")
            self.answer(404, "not found")

    return Handler


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--period", type=float, default=20)
    ap.add_argument("--revoke-after", type=float, default=5)
    ap.add_argument("--report-late", action="store_true")
    a = ap.parse_args()
    rotation = Rotation(os.environ["AWS_ENDPOINT_URL"], a.period, a.revoke_after, a.report_late)
    rotation.rotate()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler(rotation))
    log(f"listening on 127.0.0.1:{server.server_address[1]}")
    threading.Thread(target=rotation.run, daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
