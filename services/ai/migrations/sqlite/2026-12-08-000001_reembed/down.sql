DROP INDEX chunks_collection_order;
ALTER TABLE chunks DROP COLUMN next_embedding;
ALTER TABLE collections DROP COLUMN reembed_cursor;
ALTER TABLE collections DROP COLUMN reembed_claimed_at;
ALTER TABLE collections DROP COLUMN reembed_started_at;
ALTER TABLE collections DROP COLUMN next_embedding_model;
