-- Submissions as Judge0 keeps them: what was asked (source, input, limits as JSON settings)
-- and, once run, the verdict. Queued rows (status 1) are claimed oldest first by a worker,
-- which marks them Processing (2) with the time it started.
CREATE TABLE submissions (
    token TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    language_id INTEGER NOT NULL,
    source_code BLOB NOT NULL,
    stdin BLOB NOT NULL,
    expected_output BLOB,
    compiler_options TEXT,
    command_line_arguments TEXT,
    settings TEXT NOT NULL,
    status_id INTEGER NOT NULL,
    stdout BLOB,
    stderr BLOB,
    compile_output BLOB,
    message TEXT,
    time DOUBLE,
    wall_time DOUBLE,
    memory BIGINT,
    exit_code INTEGER,
    exit_signal INTEGER,
    created_at TIMESTAMP NOT NULL,
    started_at TIMESTAMP,
    finished_at TIMESTAMP
);

CREATE INDEX submissions_queue ON submissions (status_id, created_at);
CREATE INDEX submissions_tenant ON submissions (tenant_id, status_id);
