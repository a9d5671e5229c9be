-- Stripe-backed claims: the connection they act through and the Stripe object they act on
-- (a payment intent or charge to refund, a dispute to answer). `external_reference` holds the
-- refund or dispute Stripe answered with.
ALTER TABLE claims ADD COLUMN connection_id TEXT REFERENCES connections (id) ON DELETE SET NULL;
ALTER TABLE claims ADD COLUMN stripe_target TEXT;
-- Stripe refusals so far: the Idempotency-Key of a submit names it, so that a submit after a
-- refusal (a balance topped up since) is a new request, not the refusal replayed.
ALTER TABLE claims ADD COLUMN stripe_attempt BIGINT NOT NULL DEFAULT 0;
CREATE INDEX claims_by_reference ON claims (connection_id, external_reference);
-- A dispute is answered once: one claim per dispute.
CREATE UNIQUE INDEX claims_one_per_dispute ON claims (tenant_id, stripe_target)
    WHERE claim_type = 'dispute';

-- Stripe events a connection's webhook endpoint took: each is applied once, whatever Stripe
-- redelivers (the primary key), in the transaction that applies it.
CREATE TABLE stripe_events (
    connection_id TEXT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    event_id TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    -- What it did: the claim it moved, or why it changed nothing.
    outcome TEXT NOT NULL,
    received_at TIMESTAMP NOT NULL,
    PRIMARY KEY (connection_id, event_id)
);
