"""Dintero's own Python SDK against a local tokenvault.

The SDK (`pip install dintero`) does the client-credentials flow exactly as it does against
api.dintero.com; only its base URLs point at tokenvault. The token endpoints are then called with
the SDK's bearer token and checked with the SDK's own response handling.

The last part saves a card as Dintero's checkout does: a payment-token session, completed without
a browser by tokenvault's completion call (test accounts only; a customer would enter the card on
the session's `url`), then the transaction with its payment token, and the card token it created.

    TOKENVAULT_URL=http://127.0.0.1:8080 TOKENVAULT_ACCOUNT=T00000001 \
    TOKENVAULT_CLIENT_ID=... TOKENVAULT_CLIENT_SECRET=... python token_walkthrough.py
"""

import hashlib
import json
import os
import sys
import uuid

import requests
from dintero import Dintero
from dintero.checkout import _verify_response
from dintero.error import InvalidRequestBody

base = os.environ["TOKENVAULT_URL"].rstrip("/")
account = os.environ["TOKENVAULT_ACCOUNT"]

sdk = Dintero(
    account,
    os.environ["TOKENVAULT_CLIENT_ID"],
    os.environ["TOKENVAULT_CLIENT_SECRET"],
    application_name="tokenvault-example",
    api_url=base,
    checkout_url=base,
)
checkout = sdk.checkout()
headers = {"Authorization": checkout._get_dintero_auth_header(), "Content-Type": "application/json"}
customers = f"{sdk.api_url}/v1/accounts/{account}/customers/users"


def call(method, url, expected, body=None):
    response = requests.request(method, url, headers=headers, data=None if body is None else json.dumps(body))
    _verify_response(response, expected)
    return response


def step(name, detail):
    print(f"{name}: {detail}")


customer_id = f"example-{uuid.uuid4()}"
email = f"{customer_id}@example.com"
call("POST", customers, 200, {"customer_id": customer_id, "email": email})
step("customer created", customer_id)

value = hashlib.sha1(email.encode()).hexdigest()
token = call("POST", f"{customers}/{customer_id}/tokens", 201, {"type": "sha1:email", "value": value, "token_id": "email"}).json()
step("customer token created", f"{token['type']} {token['token_id']}")

listed = call("GET", f"{customers}/{customer_id}/tokens?limit=10&total=true", 200)
assert [t["id"] for t in listed.json()] == [token["id"]], listed.text
step("customer tokens listed", f"{len(listed.json())} (total-count {listed.headers['total-count']})")

try:
    call("POST", f"{customers}/{customer_id}/tokens", 201, {"type": "", "value": value})
    sys.exit("an empty type was accepted")
except InvalidRequestBody as error:
    step("bad token refused", json.loads(error.body)["error"]["errors"][0]["field"])

deleted = call("DELETE", f"{customers}/{customer_id}/tokens/email", 200).json()
assert deleted["deleted_at"] and deleted["id"] == token["id"], deleted
step("customer token deleted", deleted["deleted_at"] is not None)

card = call(
    "POST",
    f"{sdk.checkout_url}/v1/card-tokens",
    201,
    {"card_brand": "visa", "payment_product_type": "dintero_psp.creditcard", "token": f"psp-{uuid.uuid4()}",
     "masked_pan": "476173******0416", "pan_expiry_date": "09/2030", "customer_id": customer_id},
).json()
step("card token created", card["status"])

cards = call("GET", f"{sdk.checkout_url}/v1/card-tokens?customer_id={customer_id}&status=ACTIVE", 200).json()
assert [c["id"] for c in cards] == [card["id"]], cards
step("card tokens listed", len(cards))

removed = call("DELETE", f"{sdk.checkout_url}/v1/card-tokens/{card['id']}", 200, {"reason": "Profile deleted", "requestor": "MERCHANT"}).json()
step("card token deleted", removed["status"])

session = call(
    "POST",
    f"{sdk.checkout_url}/v1/sessions/payment-token",
    200,
    {"session": {"order": {"currency": "NOK", "merchant_reference": f"order-{customer_id}"},
                 "url": {"return_url": "https://shop.example.com/return"},
                 "customer": {"customer_id": customer_id}},
     "token_provider": {"payment_product_type": "dintero_psp.creditcard"}},
).json()
step("payment-token session created", session["url"].endswith(f"/v1/view/{session['id']}"))

done = call(
    "POST",
    f"{sdk.checkout_url}/v1/sessions/{session['id']}/complete",
    200,
    {"outcome": "approve", "card": {"number": "4111 1111 1111 1111", "expiry": "12/39", "cvc": "123"}},
).json()
assert done["redirect_url"].startswith("https://shop.example.com/return?transaction_id="), done
step("session completed", done["redirect_url"].split("?")[0])

transaction = call("GET", f"{sdk.checkout_url}/v1/transactions/{done['transaction_id']}?includes=card.payment_token", 200).json()
assert transaction["session_id"] == session["id"] and transaction["card"]["payment_token"], transaction
step("transaction read", f"{transaction['status']} {transaction['card']['masked_pan']}")

saved = call("GET", f"{sdk.checkout_url}/v1/card-tokens?customer_id={customer_id}&status=ACTIVE", 200).json()
assert [c["id"] for c in saved] == [transaction["card"]["payment_token_id"]], saved
assert saved[0]["token"] == transaction["card"]["payment_token"], saved
step("session card token listed", saved[0]["transaction_id"] == transaction["id"])
