-- Every access token of a subject (user:<id>, session:<id>, tenant:<id>) issued before
-- cut_at_ms is refused until expires_at, when the last of them has expired anyway. Reloaded
-- into the verifiers' denylist at start.
CREATE TABLE token_cutoffs (
    subject TEXT PRIMARY KEY,
    cut_at_ms BIGINT NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
