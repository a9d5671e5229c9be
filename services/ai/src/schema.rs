//! Diesel table definitions of the ai store (the outbox and inbox come from the kernel). The
//! full-text index (FTS5's `chunk_terms`, PostgreSQL's `chunks.terms`) is reached with SQL of
//! each backend's own, in `knowledge::store`.

diesel::table! {
    collections (id) {
        id -> Text,
        tenant_id -> Text,
        name -> Text,
        description -> Nullable<Text>,
        embedding_model -> Text,
        generation -> BigInt,
        created_by -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        next_embedding_model -> Nullable<Text>,
        vector_slot -> SmallInt,
        reembed_change -> BigInt,
        reembed_started_at -> Nullable<Timestamp>,
        reembed_claimed_at -> Nullable<Timestamp>,
        reembed_cursor -> Nullable<Text>,
    }
}

diesel::table! {
    documents (id) {
        id -> Text,
        tenant_id -> Text,
        collection_id -> Text,
        title -> Text,
        format -> Text,
        content -> Binary,
        bytes -> BigInt,
        metadata -> Text,
        status -> Text,
        error -> Nullable<Text>,
        chunk_count -> Integer,
        attempt -> BigInt,
        claims -> Integer,
        claimed_at -> Nullable<Timestamp>,
        created_by -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        processed_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    chunks (id) {
        id -> Text,
        tenant_id -> Text,
        collection_id -> Text,
        document_id -> Text,
        ordinal -> Integer,
        heading -> Nullable<Text>,
        text -> Text,
        start_offset -> BigInt,
        end_offset -> BigInt,
        embedding -> Binary,
        embedding_alt -> Nullable<Binary>,
        spare_change -> Nullable<BigInt>,
    }
}

diesel::joinable!(documents -> collections (collection_id));
diesel::joinable!(chunks -> documents (document_id));
diesel::allow_tables_to_appear_in_same_query!(collections, documents, chunks);

diesel::table! {
    provider_keys (tenant_id, provider) {
        tenant_id -> Text,
        provider -> Text,
        sealed_key -> Text,
        hint -> Text,
        created_by -> Text,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    budgets (tenant_id) {
        tenant_id -> Text,
        period -> Text,
        max_tokens -> Nullable<BigInt>,
        max_requests -> Nullable<BigInt>,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    usage_periods (tenant_id, period_start) {
        tenant_id -> Text,
        period_start -> Timestamp,
        requests -> BigInt,
        tokens_reserved -> BigInt,
        tokens_used -> BigInt,
        cost_minor -> BigInt,
    }
}

diesel::table! {
    usage_records (id) {
        id -> Text,
        tenant_id -> Text,
        user_id -> Text,
        model -> Text,
        provider -> Text,
        provider_model -> Text,
        kind -> Text,
        tokens_in -> BigInt,
        tokens_out -> BigInt,
        latency_ms -> BigInt,
        cost_minor -> BigInt,
        status -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    conversations (id) {
        id -> Text,
        tenant_id -> Text,
        user_id -> Text,
        title -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    conversation_messages (id) {
        id -> Text,
        conversation_id -> Text,
        ordinal -> Integer,
        role -> Text,
        content -> Text,
        data -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    tenant_models (tenant_id, alias) {
        tenant_id -> Text,
        alias -> Text,
        deployments -> Text,
        updated_at -> Timestamp,
    }
}
