-- A tenant's stock-keeping units and our count of each.
CREATE TABLE items (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    sku TEXT NOT NULL,
    asin TEXT,
    fnsku TEXT,
    name TEXT NOT NULL,
    on_hand BIGINT NOT NULL,
    fulfillable BIGINT NOT NULL,
    inbound BIGINT NOT NULL,
    reserved BIGINT NOT NULL,
    unfulfillable BIGINT NOT NULL,
    -- Minor units of currency.
    unit_price BIGINT NOT NULL,
    currency TEXT NOT NULL,
    reorder_point BIGINT NOT NULL,
    reorder_quantity BIGINT NOT NULL,
    version BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (tenant_id, sku)
);

-- A set of counts one source reported at once.
CREATE TABLE snapshots (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    source TEXT NOT NULL,
    item_count BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX snapshots_by_tenant ON snapshots (tenant_id, id);

-- The latest count of each item by each source (what a scan compares with on_hand).
CREATE TABLE source_counts (
    tenant_id TEXT NOT NULL,
    item_id TEXT NOT NULL REFERENCES items (id) ON DELETE CASCADE,
    source TEXT NOT NULL,
    quantity BIGINT NOT NULL,
    snapshot_id TEXT NOT NULL,
    observed_at TIMESTAMP NOT NULL,
    PRIMARY KEY (item_id, source)
);
CREATE INDEX source_counts_by_tenant ON source_counts (tenant_id);

CREATE TABLE discrepancies (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    item_id TEXT NOT NULL REFERENCES items (id) ON DELETE CASCADE,
    sku TEXT NOT NULL,
    source TEXT NOT NULL,
    snapshot_id TEXT NOT NULL,
    expected BIGINT NOT NULL,
    observed BIGINT NOT NULL,
    difference BIGINT NOT NULL,
    severity TEXT NOT NULL,
    suggested_action TEXT NOT NULL,
    confidence DOUBLE PRECISION NOT NULL,
    impact DOUBLE PRECISION NOT NULL,
    value_at_stake BIGINT NOT NULL,
    currency TEXT NOT NULL,
    status TEXT NOT NULL,
    -- 1 while open, investigating or escalated: at most one live discrepancy per item and source.
    live INTEGER,
    note TEXT,
    -- Grows with every change: writes are conditional on the version they read.
    version BIGINT NOT NULL,
    detected_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    resolved_at TIMESTAMP,
    UNIQUE (item_id, source, live)
);
CREATE INDEX discrepancies_by_tenant ON discrepancies (tenant_id, id);
CREATE INDEX discrepancies_by_item ON discrepancies (item_id, id);

-- Per-tenant scan rules.
CREATE TABLE rules (
    tenant_id TEXT PRIMARY KEY,
    auto_resolve_low BOOLEAN NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE claims (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    -- A claim keeps its discrepancy (and so its item) from being deleted.
    discrepancy_id TEXT NOT NULL REFERENCES discrepancies (id) ON DELETE RESTRICT,
    item_id TEXT NOT NULL,
    sku TEXT NOT NULL,
    claim_type TEXT NOT NULL,
    provider TEXT NOT NULL,
    status TEXT NOT NULL,
    amount BIGINT NOT NULL,
    currency TEXT NOT NULL,
    confidence DOUBLE PRECISION NOT NULL,
    -- JSON array of {kind, reference, description}.
    evidence TEXT NOT NULL,
    notes TEXT,
    external_reference TEXT,
    version BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    -- One claim per discrepancy.
    UNIQUE (discrepancy_id)
);
CREATE INDEX claims_by_tenant ON claims (tenant_id, id);

-- Every change of an item's on-hand quantity, with who and why.
CREATE TABLE quantity_changes (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    item_id TEXT NOT NULL REFERENCES items (id) ON DELETE CASCADE,
    from_quantity BIGINT NOT NULL,
    to_quantity BIGINT NOT NULL,
    reason TEXT NOT NULL,
    actor_id TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX quantity_changes_by_item ON quantity_changes (item_id, id);
