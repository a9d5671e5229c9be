-- Analytics' store: the newest state of every ticket it has heard of (facts), additive
-- rollups derived from those facts per day and per hour, the activity feed, and the tenants'
-- resource-plan factors. Facts and rollups are clustered on their keys (WITHOUT ROWID), so a
-- tenant's date range is one contiguous read.

CREATE TABLE ticket_facts (
    tenant_id TEXT NOT NULL,
    ticket_id TEXT NOT NULL,
    number TEXT NOT NULL,
    category TEXT NOT NULL,
    priority TEXT NOT NULL,
    status TEXT NOT NULL,
    zone TEXT NOT NULL,
    team_id TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    created_day TEXT NOT NULL,
    due_at TIMESTAMP NOT NULL,
    completed_at TIMESTAMP,
    first_assigned_at TIMESTAMP,
    breached BOOLEAN NOT NULL,
    deleted BOOLEAN NOT NULL,
    version BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, ticket_id)
) WITHOUT ROWID;
CREATE INDEX ticket_facts_day_idx ON ticket_facts (tenant_id, created_day);

-- grain 'day' (bucket YYYY-MM-DD) or 'hour' (bucket YYYY-MM-DDTHH, the last 48 hours).
-- Empty zone or team_id: the ticket has none.
CREATE TABLE rollups (
    tenant_id TEXT NOT NULL,
    grain TEXT NOT NULL,
    bucket TEXT NOT NULL,
    zone TEXT NOT NULL,
    team_id TEXT NOT NULL,
    category TEXT NOT NULL,
    priority TEXT NOT NULL,
    created BIGINT NOT NULL,
    completed BIGINT NOT NULL,
    completed_in_sla BIGINT NOT NULL,
    completion_secs BIGINT NOT NULL,
    breached BIGINT NOT NULL,
    assigned BIGINT NOT NULL,
    assign_secs BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, grain, bucket, zone, team_id, category, priority)
) WITHOUT ROWID;

CREATE TABLE activities (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    source TEXT NOT NULL,
    subject TEXT NOT NULL,
    summary TEXT NOT NULL,
    occurred_at TIMESTAMP NOT NULL
);
CREATE INDEX activities_recent_idx ON activities (tenant_id, occurred_at, id);

CREATE TABLE plan_factors (
    tenant_id TEXT PRIMARY KEY,
    team_divisor DOUBLE PRECISION NOT NULL,
    hours_per_ticket DOUBLE PRECISION NOT NULL,
    tickets_per_vehicle DOUBLE PRECISION NOT NULL,
    fibre_metres_per_ticket DOUBLE PRECISION NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

-- Backfills that have run (name 'tickets'): first start backfills once.
CREATE TABLE backfills (
    name TEXT PRIMARY KEY,
    completed_at TIMESTAMP NOT NULL,
    tickets BIGINT NOT NULL
);
