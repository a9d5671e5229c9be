DROP TABLE outbox_lease;
