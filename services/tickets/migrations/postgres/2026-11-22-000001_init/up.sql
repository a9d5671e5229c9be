-- Per-tenant ticket numbers: the counter row is claimed by the insert that takes a number, so
-- concurrent creates never share one.
CREATE TABLE ticket_counters (
    tenant_id TEXT PRIMARY KEY,
    last_number BIGINT NOT NULL
);

-- A tenant's zones; a tenant without rows uses the default list.
CREATE TABLE zones (
    tenant_id TEXT NOT NULL,
    name TEXT NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

CREATE TABLE tickets (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    number BIGINT NOT NULL,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    category TEXT NOT NULL,
    priority TEXT NOT NULL,
    -- LOW 1 .. URGENT 4, for sorting by priority.
    priority_rank INTEGER NOT NULL,
    status TEXT NOT NULL,
    location TEXT,
    zone TEXT,
    latitude DOUBLE PRECISION,
    longitude DOUBLE PRECISION,
    customer_name TEXT,
    customer_contact TEXT,
    team_id TEXT,
    assignee_id TEXT,
    -- Set when the SLA was overridden; otherwise the priority's default applies.
    sla_override INTEGER,
    -- created_at + SLA + time spent on hold before now.
    due_at TIMESTAMP NOT NULL,
    -- When 80% of the SLA is used.
    at_risk_at TIMESTAMP NOT NULL,
    paused_secs BIGINT NOT NULL,
    -- Where the SLA clock stands still: hold start, completion or cancellation.
    clock_stopped_at TIMESTAMP,
    estimated_duration_minutes INTEGER,
    progress INTEGER NOT NULL,
    completed_at TIMESTAMP,
    tags TEXT NOT NULL,
    breach_notified_at TIMESTAMP,
    version BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    deleted_at TIMESTAMP,
    UNIQUE (tenant_id, number)
);
-- Lists walk one of these in sort order (ties broken by number) and stop after a page.
CREATE INDEX tickets_tenant_status_idx ON tickets (tenant_id, status, number);
CREATE INDEX tickets_tenant_due_idx ON tickets (tenant_id, due_at, number);
CREATE INDEX tickets_tenant_updated_idx ON tickets (tenant_id, updated_at, number);
CREATE INDEX tickets_tenant_priority_idx ON tickets (tenant_id, priority_rank, number);
CREATE INDEX tickets_tenant_team_idx ON tickets (tenant_id, team_id);
-- Text search (`q`) is a case-insensitive substring match; trigram indexes serve it.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX tickets_title_trgm_idx ON tickets USING gin (lower(title) gin_trgm_ops);
CREATE INDEX tickets_description_trgm_idx ON tickets USING gin (lower(description) gin_trgm_ops);
-- The breach watch: unfinished tickets whose breach was not announced yet.
CREATE INDEX tickets_breach_watch_idx ON tickets (due_at)
    WHERE breach_notified_at IS NULL AND deleted_at IS NULL
    AND status IN ('OPEN', 'IN_PROGRESS', 'ON_HOLD');

CREATE TABLE assignments (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    ticket_id TEXT NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    team_id TEXT NOT NULL,
    user_id TEXT,
    note TEXT NOT NULL,
    over_capacity BOOLEAN NOT NULL,
    assigned_by TEXT NOT NULL,
    assigned_at TIMESTAMP NOT NULL
);
CREATE INDEX assignments_ticket_idx ON assignments (ticket_id, assigned_at);
CREATE INDEX assignments_team_day_idx ON assignments (tenant_id, team_id, assigned_at);

CREATE TABLE comments (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    ticket_id TEXT NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    author_id TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX comments_ticket_idx ON comments (ticket_id, id);
