-- The kernel's tables, in every service's store: the outbox (events waiting to be published),
-- its relay lease (which replica publishes) and the inbox (events a consumer has handled).
-- Stores created before the kernel owned them already have these tables (the services' own
-- first migrations made them, with the same definitions): IF NOT EXISTS keeps them and their
-- rows, so such a store upgrades in place.
CREATE TABLE IF NOT EXISTS inbox (
    consumer TEXT NOT NULL,
    event_id TEXT NOT NULL,
    processed_at TIMESTAMP NOT NULL,
    PRIMARY KEY (consumer, event_id)
);

CREATE TABLE IF NOT EXISTS outbox (
    id BIGSERIAL PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    topic TEXT NOT NULL,
    event_key TEXT NOT NULL,
    event_type TEXT NOT NULL,
    source TEXT NOT NULL,
    tenant_id TEXT,
    traceparent TEXT,
    payload BYTEA NOT NULL,
    created_at TIMESTAMP NOT NULL,
    sent_at TIMESTAMP,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS outbox_pending_idx ON outbox (id) WHERE sent_at IS NULL;

CREATE TABLE IF NOT EXISTS outbox_lease (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
