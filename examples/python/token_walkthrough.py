"""Dintero's own Python SDK against a local tokenvault.

The SDK (`pip install dintero`) does the client-credentials flow exactly as it does against
api.dintero.com; only its base URLs point at tokenvault. The token endpoints are then called with
the SDK's bearer token and checked with the SDK's own response handling.

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
