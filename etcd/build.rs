//! Nothing to build: `protoc-bin-vendored` is a build-dependency only so that its protoc is
//! downloaded for etcd-client's build script (tools/protoc, .cargo/config.toml).
fn main() {}
