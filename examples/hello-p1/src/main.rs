//! A wasm32-wasip1 core module: prints its arguments and environment.
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    println!("Hello from WASIp1, args: {args:?}");
    for (k, v) in std::env::vars() {
        println!("env: {k}={v}");
    }
}
