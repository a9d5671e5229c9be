-- Changing a collection's embedding model: while `next_embedding_model` is set, workers embed
-- its chunks again into `next_embedding` (in chunk id order, `reembed_cursor` the last one
-- done, `reembed_claimed_at` the worker's lease), and searches go on with `embedding`. The
-- last batch swaps them in one transaction with the collection's model.
ALTER TABLE collections ADD COLUMN next_embedding_model TEXT;
ALTER TABLE collections ADD COLUMN reembed_started_at TIMESTAMP;
ALTER TABLE collections ADD COLUMN reembed_claimed_at TIMESTAMP;
ALTER TABLE collections ADD COLUMN reembed_cursor TEXT;
ALTER TABLE chunks ADD COLUMN next_embedding BYTEA;
CREATE INDEX chunks_collection_order ON chunks (collection_id, id);
