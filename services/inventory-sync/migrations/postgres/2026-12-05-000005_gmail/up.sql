-- Consents under way (Google OAuth 2.0 with PKCE): the state Google hands back is kept only as
-- its SHA-256, bound to the tenant and user who asked; the PKCE verifier is sealed. A state
-- is taken once (deleted when used) and lapses at expires_at.
CREATE TABLE oauth_states (
    state_hash TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    provider TEXT NOT NULL,
    verifier TEXT NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX oauth_states_expiry ON oauth_states (expires_at);

-- Gmail messages a connection read: each is applied once (the primary key), with what it did.
CREATE TABLE mail_messages (
    connection_id TEXT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    message_id TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    outcome TEXT NOT NULL,
    read_at TIMESTAMP NOT NULL,
    PRIMARY KEY (connection_id, message_id)
);

-- Amazon reimbursement ids a tenant's mails approved a claim with: each counts once.
CREATE TABLE reimbursements (
    tenant_id TEXT NOT NULL,
    reimbursement_id TEXT NOT NULL,
    claim_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    recorded_at TIMESTAMP NOT NULL,
    PRIMARY KEY (tenant_id, reimbursement_id)
);
