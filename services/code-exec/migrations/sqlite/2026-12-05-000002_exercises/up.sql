-- Exercises for the tutor: test cases (stdin, expected output, hidden or visible, points)
-- under an id the tenant chooses, and attempts at them. An attempt queues one submission per
-- case (`submissions.attempt_id`, `case_index`); such submissions are never shown through
-- Judge0's API, so a hidden case's input and output cannot be read by their tokens.
CREATE TABLE exercises (
    tenant_id TEXT NOT NULL,
    id TEXT NOT NULL,
    title TEXT NOT NULL,
    language_ids TEXT NOT NULL,
    cases TEXT NOT NULL,
    limits TEXT NOT NULL,
    case_count INTEGER NOT NULL,
    max_score INTEGER NOT NULL,
    version INTEGER NOT NULL,
    updated_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE attempts (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    exercise_id TEXT NOT NULL,
    exercise_version INTEGER NOT NULL,
    user_id TEXT NOT NULL,
    language_id INTEGER NOT NULL,
    -- Per case, in the exercise's order at the time of the attempt: hidden and points, and
    -- once the attempt is finished its verdict (the case's submissions are then deleted).
    cases TEXT NOT NULL,
    score INTEGER,
    max_score INTEGER NOT NULL,
    passed BOOLEAN,
    created_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP
);

CREATE INDEX attempts_exercise ON attempts (tenant_id, exercise_id, created_at);

ALTER TABLE submissions ADD COLUMN attempt_id TEXT;
ALTER TABLE submissions ADD COLUMN case_index INTEGER;
CREATE INDEX submissions_attempt ON submissions (attempt_id);
-- The queue's claim picks a tenant's user with the fewest runs, then that user's oldest.
CREATE INDEX submissions_tenant_user ON submissions (tenant_id, status_id, user_id, created_at);
