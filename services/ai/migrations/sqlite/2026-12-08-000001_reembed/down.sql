DROP INDEX chunks_collection_order;
ALTER TABLE chunks DROP COLUMN spare_change;
ALTER TABLE chunks DROP COLUMN embedding_alt;
ALTER TABLE collections DROP COLUMN reembed_cursor;
ALTER TABLE collections DROP COLUMN reembed_claimed_at;
ALTER TABLE collections DROP COLUMN reembed_started_at;
ALTER TABLE collections DROP COLUMN reembed_change;
ALTER TABLE collections DROP COLUMN vector_slot;
ALTER TABLE collections DROP COLUMN next_embedding_model;
