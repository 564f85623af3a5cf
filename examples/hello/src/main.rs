//! A wasm32-wasip2 command: prints its arguments and environment.
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let who = args.get(1).map(String::as_str).unwrap_or("world");
    let greeting = std::env::var("GREETING").unwrap_or_else(|_| "Hello".to_owned());
    println!("{greeting}, {who}!");
    println!("args: {:?}", &args[1..]);
    let mut vars: Vec<(String, String)> = std::env::vars().collect();
    vars.sort();
    for (k, v) in vars {
        println!("env: {k}={v}");
    }
}
