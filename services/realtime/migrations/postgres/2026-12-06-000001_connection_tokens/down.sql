DROP TABLE connection_tokens;
