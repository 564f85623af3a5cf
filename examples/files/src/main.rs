//! Reads a file bundled in the artifact (`/static`, read-only) and writes a copy into
//! the operator's mount (`/out`).
use std::io::Write;

fn main() {
    let message = match std::fs::read_to_string("/static/message.txt") {
        Ok(m) => m,
        Err(e) => {
            eprintln!("cannot read /static/message.txt: {e}");
            std::process::exit(2);
        }
    };
    print!("read from /static/message.txt: {message}");
    match std::fs::File::create("/out/copy.txt").and_then(|mut f| f.write_all(message.as_bytes())) {
        Ok(()) => println!("wrote /out/copy.txt"),
        Err(e) => {
            eprintln!("cannot write /out/copy.txt: {e} (run with --mount DIR:/out)");
            std::process::exit(3);
        }
    }
}
