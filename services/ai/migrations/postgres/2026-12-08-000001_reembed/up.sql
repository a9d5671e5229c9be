-- Changing a collection's embedding model. Each chunk has two vector slots, `embedding` (0)
-- and `embedding_alt` (1); the collection's `vector_slot` says which holds its current
-- model's vectors, and searches read that one. While `next_embedding_model` is set (change
-- number `reembed_change`), workers embed the chunks again into the other slot, marking each
-- with the change it was embedded for (`spare_change`), in chunk id order (`reembed_cursor`
-- the last one done, `reembed_claimed_at` the worker's lease). The last batch flips
-- `vector_slot` with the collection's model: the swap writes one row, whatever the size.
ALTER TABLE collections ADD COLUMN next_embedding_model TEXT;
ALTER TABLE collections ADD COLUMN vector_slot SMALLINT NOT NULL DEFAULT 0;
ALTER TABLE collections ADD COLUMN reembed_change BIGINT NOT NULL DEFAULT 0;
ALTER TABLE collections ADD COLUMN reembed_started_at TIMESTAMP;
ALTER TABLE collections ADD COLUMN reembed_claimed_at TIMESTAMP;
ALTER TABLE collections ADD COLUMN reembed_cursor TEXT;
ALTER TABLE chunks ADD COLUMN embedding_alt BYTEA;
ALTER TABLE chunks ADD COLUMN spare_change BIGINT;
CREATE INDEX chunks_collection_order ON chunks (collection_id, id);
