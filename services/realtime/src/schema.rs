// The store's tables (the same on SQLite and PostgreSQL).

diesel::table! {
    connection_tokens (token_hash) {
        token_hash -> Text,
        tenant_id -> Text,
        user_id -> Text,
        identity -> Text,
        expires_at -> Timestamp,
    }
}
