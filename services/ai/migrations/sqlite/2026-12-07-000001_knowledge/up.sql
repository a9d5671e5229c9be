-- Knowledge bases: a tenant's collections of documents, each document's text cut into
-- chunks with their embeddings (f32 little-endian blobs, scored exactly in the service) and a
-- full-text index of the chunks (FTS5). `generation` moves on with every change to a
-- collection's chunks, so that replicas know when their in-memory vectors are stale.
CREATE TABLE collections (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT,
    embedding_model TEXT NOT NULL,
    generation BIGINT NOT NULL DEFAULT 0,
    created_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (tenant_id, name)
);

-- A document keeps what was uploaded (to process it again) and where processing stands:
-- PROCESSING (waiting for or held by a worker since claimed_at), COMPLETED or ERROR (error
-- says why). `attempt` moves on with every claim and reprocess (a result of an older attempt
-- is dropped); `claims` counts workers that took it since it was last given, so that one that
-- kills its workers is given up.
CREATE TABLE documents (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    collection_id TEXT NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
    title TEXT NOT NULL,
    format TEXT NOT NULL,
    content BLOB NOT NULL,
    bytes BIGINT NOT NULL,
    metadata TEXT NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    chunk_count INTEGER NOT NULL DEFAULT 0,
    attempt BIGINT NOT NULL DEFAULT 0,
    claims INTEGER NOT NULL DEFAULT 0,
    claimed_at TIMESTAMP,
    created_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    processed_at TIMESTAMP
);
CREATE INDEX documents_collection ON documents (tenant_id, collection_id, id);
CREATE INDEX documents_waiting ON documents (status, claimed_at);

CREATE TABLE chunks (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    collection_id TEXT NOT NULL,
    document_id TEXT NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL,
    heading TEXT,
    text TEXT NOT NULL,
    start_offset BIGINT NOT NULL,
    end_offset BIGINT NOT NULL,
    embedding BLOB NOT NULL
);
CREATE INDEX chunks_collection ON chunks (tenant_id, collection_id);
CREATE INDEX chunks_document ON chunks (document_id, ordinal);

-- Keyword search: one row per chunk, written and deleted with it.
CREATE VIRTUAL TABLE chunk_terms USING fts5 (
    chunk_id UNINDEXED,
    tenant_id UNINDEXED,
    collection_id UNINDEXED,
    document_id UNINDEXED,
    text,
    tokenize = 'unicode61 remove_diacritics 2'
);
