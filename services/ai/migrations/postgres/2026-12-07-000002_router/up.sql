-- Tenants' own provider keys, sealed (AES-256-GCM, bound to the tenant and provider); never
-- returned. `hint` is the key's last four characters, to tell keys apart.
CREATE TABLE provider_keys (
    tenant_id TEXT NOT NULL,
    provider TEXT NOT NULL,
    sealed_key TEXT NOT NULL,
    hint TEXT NOT NULL,
    created_by TEXT NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (tenant_id, provider)
);

-- A tenant's budget per period (day or month); none set: unlimited.
CREATE TABLE budgets (
    tenant_id TEXT PRIMARY KEY,
    period TEXT NOT NULL,
    max_tokens BIGINT,
    max_requests BIGINT,
    updated_at TIMESTAMP NOT NULL
);

-- What a tenant used in a period: calls reserve their estimated tokens before they run (one
-- conditional update) and settle what they used after.
CREATE TABLE usage_periods (
    tenant_id TEXT NOT NULL,
    period_start TIMESTAMP NOT NULL,
    requests BIGINT NOT NULL DEFAULT 0,
    tokens_reserved BIGINT NOT NULL DEFAULT 0,
    tokens_used BIGINT NOT NULL DEFAULT 0,
    cost_minor BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, period_start)
);

-- Each call: who, which model, how much.
CREATE TABLE usage_records (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    model TEXT NOT NULL,
    provider TEXT NOT NULL,
    provider_model TEXT NOT NULL,
    kind TEXT NOT NULL,
    tokens_in BIGINT NOT NULL,
    tokens_out BIGINT NOT NULL,
    latency_ms BIGINT NOT NULL,
    cost_minor BIGINT NOT NULL,
    status TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX usage_records_tenant ON usage_records (tenant_id, created_at);

-- The field-force assistant's conversations, each its user's own, with their messages in order
-- (`data`: what the assistant looked up, as JSON).
CREATE TABLE conversations (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    title TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX conversations_owner ON conversations (tenant_id, user_id, id);

CREATE TABLE conversation_messages (
    id TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    data TEXT,
    created_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX conversation_messages_order ON conversation_messages (conversation_id, ordinal);

-- A tenant's own model aliases: deployments on providers the tenant holds a key of (JSON:
-- [{provider, model}]), found before the platform's aliases of the same name.
CREATE TABLE tenant_models (
    tenant_id TEXT NOT NULL,
    alias TEXT NOT NULL,
    deployments TEXT NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (tenant_id, alias)
);
