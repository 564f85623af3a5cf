//! Generates the CRI client (`runtime.v1`) the Kubernetes tests drive containerd with,
//! from `cri/api.proto` (k8s.io/cri-api, vendored unchanged). Needs `protoc`
//! (`bash scripts/setup.sh` installs protobuf-compiler).

fn main() {
    println!("cargo:rerun-if-changed=cri/api.proto");
    tonic_build::configure()
        .build_server(false)
        .compile_protos(&["cri/api.proto"], &["cri"])
        .unwrap_or_else(|e| {
            panic!("generating the CRI client from cri/api.proto failed (is protoc installed? apt-get install protobuf-compiler): {e}")
        });
}
