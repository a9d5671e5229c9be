DROP TABLE chunk_terms;
DROP TABLE chunks;
DROP TABLE documents;
DROP TABLE collections;
