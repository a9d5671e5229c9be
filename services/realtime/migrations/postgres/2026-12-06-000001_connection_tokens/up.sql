-- Short-lived, single-use connection tokens (POST /api/v1/realtime/tokens): a browser cannot
-- set headers on a WebSocket, so it trades its access token for one of these and sends it in
-- its first frame. Only the token's SHA-256 is kept, with the identity it was issued for (the
-- access token's id, session and expiry, so that the connection ends with the access token and
-- a revocation of it reaches the connection).
CREATE TABLE connection_tokens (
    token_hash TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    identity TEXT NOT NULL,
    expires_at TIMESTAMP NOT NULL
);

CREATE INDEX connection_tokens_expiry ON connection_tokens (expires_at);
