//! Compiles the agent's status service (`proto/procgroups/v1/status.proto`)
//! into Rust at build time. The descriptor set comes from `protox`, a protobuf
//! compiler written in Rust, so a plain `cargo build` needs no system `protoc`.

use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = Path::new("proto/procgroups/v1/status.proto");
    println!("cargo:rerun-if-changed={}", proto.display());
    let fds = protox::compile([proto], [Path::new("proto")])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
