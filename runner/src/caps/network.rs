//! Sockets and DNS: always denied. Outbound HTTP (the http trigger) is granted per
//! destination by the outbound module, never through raw sockets.

use wasmtime_wasi::WasiCtxBuilder;

/// Denies TCP, UDP, name lookups and every socket address.
pub fn apply(builder: &mut WasiCtxBuilder) {
    builder
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .socket_addr_check(|_, _| Box::pin(async { false }));
}
