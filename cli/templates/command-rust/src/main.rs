//! A command for wpkg: greets its arguments. It sees the variables wpkg.toml grants and
//! nothing else of the host: `GREETING` is unset until `env` gives it.

fn main() {
    let greeting = std::env::var("GREETING").unwrap_or_else(|_| "Hello".into());
    let names: Vec<String> = std::env::args().skip(1).collect();
    if names.is_empty() {
        println!("{greeting} from {{name}}! (pass names after --)");
    }
    for name in names {
        println!("{greeting}, {name}!");
    }
}
