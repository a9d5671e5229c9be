"""Does inventory-sync's Stripe webhook endpoint take exactly what Stripe's own library takes?

Run by scripts/ci/stripe-signatures.sh with the official `stripe` package installed, against an
embedded platform it started (gateway at $GATEWAY, Stripe's API at this script's own
`GET /v1/account`). It connects a tenant's Stripe account, then sends the connection's
webhook endpoint headers made by `stripe.WebhookSignature.generate_signature_header` and
variations of them (stale, future, another secret, another body, v0 only, two v1, spelling
changes) and compares each verdict with `stripe.WebhookSignature.verify_header`'s at the
same 300 s tolerance: accepted (200) where the library accepts, refused (400) where it
refuses. Exits 1 on any disagreement.
"""

import http.server
import json
import os
import secrets
import sys
import threading
import time
import urllib.request

import stripe
from stripe import WebhookSignature

GATEWAY = os.environ["GATEWAY"]
STRIPE_PORT = int(os.environ["STRIPE_PORT"])
KEY = "sk_test_" + secrets.token_hex(12)
SECRET = "whsec_" + secrets.token_hex(16)
TOLERANCE = 300


class FakeStripe(http.server.BaseHTTPRequestHandler):
    """Stripe's GET /v1/account, for the key checked at connect."""

    def do_GET(self):
        ok = self.path == "/v1/account" and self.headers.get("Authorization") == f"Bearer {KEY}"
        body = json.dumps(
            {"id": "acct_ci", "object": "account"}
            if ok
            else {"error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}}
        ).encode()
        self.send_response(200 if ok else 401)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def call(method, path, body=None, headers=None, raw=None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(GATEWAY + path, data=data, method=method)
    req.add_header("content-type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def event():
    return json.dumps(
        {
            "id": "evt_" + secrets.token_hex(12),
            "object": "event",
            "type": "charge.succeeded",
            "created": int(time.time()),
            "data": {"object": {"id": "ch_" + secrets.token_hex(8), "status": "succeeded"}},
        }
    )


def cases():
    """(what, payload, header) to judge; headers from the library, then changed."""
    now = int(time.time())
    sign = WebhookSignature.generate_signature_header
    p = event()
    yield "made now", p, sign(p, SECRET)
    p = event()
    yield "made 200 s ago", p, sign(p, SECRET, timestamp=now - 200)
    p = event()
    yield "made 400 s ago", p, sign(p, SECRET, timestamp=now - 400)
    p = event()
    yield "made 1000 s ahead", p, sign(p, SECRET, timestamp=now + 1000)
    p = event()
    yield "another secret", p, sign(p, "whsec_" + secrets.token_hex(16))
    p, q = event(), event()
    yield "another body's header", p, sign(q, SECRET)
    p = event()
    yield "body changed after signing", p.replace("succeeded", "failed"), sign(p, SECRET)
    p = event()
    yield "v0 only", p, sign(p, SECRET).replace("v1=", "v0=")
    p = event()
    good = sign(p, SECRET)
    t, v1 = good.split(",")
    yield "a wrong v1 and the right one (a rolled secret)", p, f"{t},v1={'0' * 64},{v1}"
    p = event()
    good = sign(p, SECRET)
    t, v1 = good.split(",")
    yield "v0 first, then v1", p, f"{t},v0={'a' * 64},{v1}"
    p = event()
    t, v1 = sign(p, SECRET).split(",")
    yield "upper-case hex", p, f"{t},{v1.upper().replace('V1=', 'v1=')}"
    p = event()
    t, v1 = sign(p, SECRET).split(",")
    yield "signature first", p, f"{v1},{t}"
    p = event()
    t, v1 = sign(p, SECRET).split(",")
    yield "a space after the comma", p, f"{t}, {v1}"
    p = event()
    yield "no timestamp", p, sign(p, SECRET).split(",")[1]
    p = event()
    yield "timestamp only", p, sign(p, SECRET).split(",")[0]
    p = event()
    t, v1 = sign(p, SECRET).split(",")
    yield "truncated signature", p, f"{t},{v1[:-1]}"
    p = event()
    yield "not a header at all", p, "garbage"
    p = event()
    t, v1 = sign(p, SECRET).split(",")
    yield "a second timestamp after the signed one", p, f"{t},{v1},t={now - 5000}"


def main():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", STRIPE_PORT), FakeStripe)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    status, body = call(
        "POST",
        "/api/v1/auth/register",
        {
            "email": "stripe-ci@example.test",
            "password": "Stripe-ci-passw0rd!",
            "name": "CI",
            "tenant_name": "Stripe CI",
        },
    )
    assert status == 201, (status, body)
    token = json.loads(body)["access_token"]
    status, body = call(
        "POST",
        "/api/v1/inventory/connections",
        {"provider": "stripe", "secret_key": KEY, "webhook_secret": SECRET},
        {"Authorization": f"Bearer {token}"},
    )
    assert status == 201, (status, body)
    path = json.loads(body)["webhook_path"]

    disagreements = 0
    verdicts = {True: 0, False: 0}
    for what, payload, header in cases():
        try:
            WebhookSignature.verify_header(payload, header, SECRET, TOLERANCE)
            theirs = True
        except stripe.SignatureVerificationError:
            theirs = False
        status, body = call("POST", path, raw=payload.encode(), headers={"Stripe-Signature": header})
        if status not in (200, 400):
            print(f"  {what}: unexpected {status} {body[:200]!r}")
            disagreements += 1
            continue
        ours = status == 200
        verdicts[theirs] += 1
        mark = "agree" if ours == theirs else "DISAGREE"
        print(f"  {mark:8} stripe {'accepts' if theirs else 'refuses'}, agora {'accepts' if ours else 'refuses'}: {what}")
        disagreements += ours != theirs
    print(
        f"stripe-signatures: {verdicts[True]} headers accepted and {verdicts[False]} refused by "
        f"stripe {stripe.VERSION}; {disagreements} disagreement(s)"
    )
    # Both verdicts must have been exercised for the comparison to mean anything.
    if disagreements or not verdicts[True] or not verdicts[False]:
        sys.exit(1)


if __name__ == "__main__":
    main()
