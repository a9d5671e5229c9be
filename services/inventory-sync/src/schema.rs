//! Diesel table definitions of the inventory-sync store (the outbox and inbox come from the
//! kernel).

diesel::table! {
    items (id) {
        id -> Text,
        tenant_id -> Text,
        sku -> Text,
        asin -> Nullable<Text>,
        fnsku -> Nullable<Text>,
        name -> Text,
        on_hand -> BigInt,
        fulfillable -> BigInt,
        inbound -> BigInt,
        reserved -> BigInt,
        unfulfillable -> BigInt,
        unit_price -> BigInt,
        currency -> Text,
        reorder_point -> BigInt,
        reorder_quantity -> BigInt,
        version -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    snapshots (id) {
        id -> Text,
        tenant_id -> Text,
        source -> Text,
        item_count -> BigInt,
        created_by -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    source_counts (item_id, source) {
        tenant_id -> Text,
        item_id -> Text,
        source -> Text,
        quantity -> BigInt,
        snapshot_id -> Text,
        observed_at -> Timestamp,
    }
}

diesel::table! {
    discrepancies (id) {
        id -> Text,
        tenant_id -> Text,
        item_id -> Text,
        sku -> Text,
        source -> Text,
        snapshot_id -> Text,
        expected -> BigInt,
        observed -> BigInt,
        difference -> BigInt,
        severity -> Text,
        suggested_action -> Text,
        confidence -> Double,
        impact -> Double,
        value_at_stake -> BigInt,
        currency -> Text,
        status -> Text,
        live -> Nullable<Integer>,
        note -> Nullable<Text>,
        version -> BigInt,
        detected_at -> Timestamp,
        updated_at -> Timestamp,
        resolved_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    rules (tenant_id) {
        tenant_id -> Text,
        auto_resolve_low -> Bool,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    claims (id) {
        id -> Text,
        tenant_id -> Text,
        discrepancy_id -> Text,
        item_id -> Text,
        sku -> Text,
        claim_type -> Text,
        provider -> Text,
        status -> Text,
        amount -> BigInt,
        currency -> Text,
        confidence -> Double,
        evidence -> Text,
        notes -> Nullable<Text>,
        external_reference -> Nullable<Text>,
        version -> BigInt,
        created_by -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        connection_id -> Nullable<Text>,
        stripe_target -> Nullable<Text>,
        stripe_attempt -> BigInt,
    }
}

diesel::table! {
    quantity_changes (id) {
        id -> Text,
        tenant_id -> Text,
        item_id -> Text,
        from_quantity -> BigInt,
        to_quantity -> BigInt,
        reason -> Text,
        actor_id -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    connections (id) {
        id -> Text,
        tenant_id -> Text,
        provider -> Text,
        account -> Text,
        status -> Text,
        credentials -> Text,
        access_token -> Nullable<Text>,
        access_expires_at -> Nullable<Timestamp>,
        webhook_secret -> Nullable<Text>,
        last_error -> Nullable<Text>,
        last_synced_at -> Nullable<Timestamp>,
        created_by -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    sync_runs (id) {
        id -> Text,
        tenant_id -> Text,
        connection_id -> Text,
        status -> Text,
        trigger -> Text,
        live -> Nullable<Integer>,
        lease_owner -> Nullable<Text>,
        lease_until -> Nullable<Timestamp>,
        snapshot_id -> Text,
        next_token -> Nullable<Text>,
        pages -> BigInt,
        items_seen -> BigInt,
        errors -> BigInt,
        failure -> Nullable<Text>,
        started_at -> Timestamp,
        updated_at -> Timestamp,
        finished_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    stripe_events (connection_id, event_id) {
        connection_id -> Text,
        event_id -> Text,
        tenant_id -> Text,
        event_type -> Text,
        outcome -> Text,
        received_at -> Timestamp,
    }
}

diesel::table! {
    oauth_states (state_hash) {
        state_hash -> Text,
        tenant_id -> Text,
        user_id -> Text,
        provider -> Text,
        verifier -> Text,
        expires_at -> Timestamp,
        created_at -> Timestamp,
    }
}

diesel::table! {
    mail_messages (connection_id, message_id) {
        connection_id -> Text,
        message_id -> Text,
        tenant_id -> Text,
        subject -> Text,
        outcome -> Text,
        read_at -> Timestamp,
    }
}

diesel::table! {
    reimbursements (tenant_id, reimbursement_id) {
        tenant_id -> Text,
        reimbursement_id -> Text,
        claim_id -> Text,
        message_id -> Text,
        recorded_at -> Timestamp,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    items,
    snapshots,
    source_counts,
    discrepancies,
    rules,
    claims,
    quantity_changes,
    connections,
    sync_runs,
    stripe_events,
    oauth_states,
    mail_messages,
    reimbursements
);
