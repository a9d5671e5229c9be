-- A tenant's account at a provider. Credentials and access tokens are sealed (AES-256-GCM,
-- bound to the connection's id); nothing here is readable without the key-encryption key.
CREATE TABLE connections (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    provider TEXT NOT NULL,
    -- The provider's account this is: the marketplace for Amazon, the account for Stripe.
    account TEXT NOT NULL,
    status TEXT NOT NULL,
    credentials TEXT NOT NULL,
    access_token TEXT,
    access_expires_at TIMESTAMP,
    webhook_secret TEXT,
    last_error TEXT,
    last_synced_at TIMESTAMP,
    created_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (tenant_id, provider, account)
);

-- Syncs of a connection. At most one runs per connection (the unique index on live); a
-- replica works on it while it holds the lease, and another takes over once the lease lapses.
CREATE TABLE sync_runs (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    connection_id TEXT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    status TEXT NOT NULL,
    trigger TEXT NOT NULL,
    live INTEGER,
    lease_owner TEXT,
    lease_until TIMESTAMP,
    snapshot_id TEXT NOT NULL,
    next_token TEXT,
    pages BIGINT NOT NULL,
    items_seen BIGINT NOT NULL,
    errors BIGINT NOT NULL,
    failure TEXT,
    started_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP,
    UNIQUE (connection_id, live)
);
CREATE INDEX sync_runs_by_connection ON sync_runs (connection_id, id);
CREATE INDEX sync_runs_live ON sync_runs (live, lease_until);
