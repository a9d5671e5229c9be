//! Tables every service store has: the outbox (events waiting to be published), its relay
//! lease (which replica publishes), and the inbox (events a consumer has already handled).
//! Each service's migrations create them.

diesel::table! {
    outbox (id) {
        id -> BigInt,
        event_id -> Text,
        topic -> Text,
        event_key -> Text,
        event_type -> Text,
        source -> Text,
        tenant_id -> Nullable<Text>,
        traceparent -> Nullable<Text>,
        payload -> Binary,
        created_at -> Timestamp,
        sent_at -> Nullable<Timestamp>,
        attempts -> Integer,
        last_error -> Nullable<Text>,
    }
}

diesel::table! {
    inbox (consumer, event_id) {
        consumer -> Text,
        event_id -> Text,
        processed_at -> Timestamp,
    }
}

diesel::table! {
    outbox_lease (name) {
        name -> Text,
        holder -> Text,
        expires_at -> Timestamp,
    }
}
