-- Which replica's outbox relay publishes (one at a time keeps events unduplicated and in order).
CREATE TABLE outbox_lease (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
