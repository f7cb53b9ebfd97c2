-- Recurrence tokens (issue 19): a payment-token session for a product type whose token provider
-- takes `token_types` (payex.creditcard, bambora.creditcard) can create a `recurrence_token`
-- besides, or instead of, a `payment_token`. Both are card tokens; the type tells them apart.
ALTER TABLE card_tokens ADD COLUMN token_type TEXT NOT NULL DEFAULT 'payment_token';
