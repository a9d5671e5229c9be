//! Generated gRPC services and event messages of Agora (from `proto/`).

pub mod auth {
    pub mod v1 {
        tonic::include_proto!("agora.auth.v1");
    }
}

pub mod tickets {
    pub mod v1 {
        tonic::include_proto!("agora.tickets.v1");
    }
}

pub mod analytics {
    pub mod v1 {
        tonic::include_proto!("agora.analytics.v1");
    }
}

pub mod inventory {
    pub mod v1 {
        tonic::include_proto!("agora.inventory.v1");
    }
}

pub mod ai {
    pub mod v1 {
        tonic::include_proto!("agora.ai.v1");
    }
}

pub mod realtime {
    pub mod v1 {
        tonic::include_proto!("agora.realtime.v1");
    }
}

pub mod events {
    pub mod v1 {
        tonic::include_proto!("agora.events.v1");
    }
}
