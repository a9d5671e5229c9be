//! Compiles proto/ with a vendored protoc, so no system protoc is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/agora/auth/v1/auth.proto",
        "proto/agora/events/v1/auth.proto",
        "proto/agora/tickets/v1/tickets.proto",
        "proto/agora/events/v1/tickets.proto",
        "proto/agora/analytics/v1/analytics.proto",
        "proto/agora/inventory/v1/inventory.proto",
        "proto/agora/events/v1/inventory.proto",
        "proto/agora/events/v1/code_exec.proto",
        "proto/agora/events/v1/ai.proto",
        "proto/agora/realtime/v1/realtime.proto",
        "proto/agora/ai/v1/ai.proto",
    ];
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure().compile_with_config(config, &protos, &["proto"])?;
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    Ok(())
}
