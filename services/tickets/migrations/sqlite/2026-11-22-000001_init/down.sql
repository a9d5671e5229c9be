DROP TABLE outbox_lease;
DROP TABLE outbox;
DROP TABLE inbox;
DROP TABLE comments;
DROP TABLE assignments;
DROP TABLE tickets;
DROP TABLE zones;
DROP TABLE ticket_counters;
