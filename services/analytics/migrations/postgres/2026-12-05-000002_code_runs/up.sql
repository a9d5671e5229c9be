-- Code-exec's facts: one row per finished Judge0 submission (kind `submission`) and per scored
-- exercise attempt (kind `attempt`), keyed by the token or attempt id, so that a replayed or
-- redelivered event changes nothing. No program text ever reaches analytics.
CREATE TABLE code_runs (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    language_id INTEGER NOT NULL,
    language TEXT NOT NULL,
    -- Judge0's status id (submissions); 3 (Accepted) for a passed attempt, 4 otherwise.
    status_id INTEGER NOT NULL,
    accepted BOOLEAN NOT NULL,
    -- CPU seconds (submissions).
    cpu_time DOUBLE PRECISION NOT NULL,
    exercise_id TEXT NOT NULL,
    score INTEGER NOT NULL,
    max_score INTEGER NOT NULL,
    finished_at TIMESTAMP NOT NULL
);
CREATE INDEX code_runs_finished ON code_runs (tenant_id, finished_at);
