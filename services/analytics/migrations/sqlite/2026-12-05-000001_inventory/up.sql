-- Inventory's facts, one row per discrepancy and per claim, as inventory-sync's events last
-- described them (the highest version wins; replaying an event changes nothing). Money is in minor units
-- of `currency` and never summed across currencies.
CREATE TABLE inventory_discrepancies (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    sku TEXT NOT NULL,
    source TEXT NOT NULL,
    severity TEXT NOT NULL,
    status TEXT NOT NULL,
    value_at_stake BIGINT NOT NULL,
    currency TEXT NOT NULL,
    detected_at TIMESTAMP NOT NULL,
    resolved_at TIMESTAMP,
    version BIGINT NOT NULL,
    -- The time of the event that wrote this row.
    as_of TIMESTAMP NOT NULL
);
CREATE INDEX inventory_discrepancies_detected ON inventory_discrepancies (tenant_id, detected_at);
CREATE INDEX inventory_discrepancies_resolved ON inventory_discrepancies (tenant_id, resolved_at);

CREATE TABLE inventory_claims (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    claim_type TEXT NOT NULL,
    provider TEXT NOT NULL,
    status TEXT NOT NULL,
    amount BIGINT NOT NULL,
    currency TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    -- When it reached completed (the money recovered) or rejected.
    settled_at TIMESTAMP,
    version BIGINT NOT NULL,
    as_of TIMESTAMP NOT NULL
);
CREATE INDEX inventory_claims_created ON inventory_claims (tenant_id, created_at);
CREATE INDEX inventory_claims_settled ON inventory_claims (tenant_id, settled_at);
