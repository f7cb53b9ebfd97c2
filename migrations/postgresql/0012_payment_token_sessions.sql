-- Payment-token sessions (checkout_payment_token_session_post) and the transaction an approval
-- creates. No card number or CVC is ever stored: the transaction holds the masked PAN only.
CREATE TABLE payment_token_sessions (
    seq BIGSERIAL PRIMARY KEY,
    account_id TEXT NOT NULL,
    id TEXT NOT NULL,
    status TEXT NOT NULL,
    session TEXT NOT NULL,
    token_provider TEXT NOT NULL,
    transaction_id TEXT,
    transaction_body TEXT,
    card_token_id TEXT,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (account_id, id)
);
CREATE UNIQUE INDEX payment_token_sessions_transaction ON payment_token_sessions (account_id, transaction_id)
    WHERE transaction_id IS NOT NULL;
