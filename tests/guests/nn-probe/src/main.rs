//! Uses wasi-nn as its arguments say:
//!
//! - `classify MODEL X1 X2 X3 X4`: loads MODEL by name, runs it on a 1x4 f32 input named
//!   `input`, prints `scores S1 S2 S3` and `class N` (the highest score)
//! - `load-bytes`: hands the host model bytes of its own (`graph.load`)
//!
//! Prints `denied: ...` and exits 1 when the host refuses.

wit_bindgen::generate!({
    path: "wit",
    world: "probe",
    generate_all,
});

use wasi::nn::graph::{self, ExecutionTarget, GraphEncoding};
use wasi::nn::tensor::{Tensor, TensorType};

fn refused(what: &str, e: &wasi::nn::errors::Error) -> ! {
    println!("denied: {what}: {:?}: {}", e.code(), e.data());
    std::process::exit(1)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    match a.as_slice() {
        ["classify", model, xs @ ..] => {
            let g = graph::load_by_name(model).unwrap_or_else(|e| refused("load-by-name", &e));
            let ctx = g
                .init_execution_context()
                .unwrap_or_else(|e| refused("init-execution-context", &e));
            let input: Vec<u8> = xs
                .iter()
                .flat_map(|x| x.parse::<f32>().expect("a number").to_le_bytes())
                .collect();
            let t = Tensor::new(&[1, xs.len() as u32], TensorType::Fp32, &input);
            let out = ctx
                .compute(vec![("input".to_string(), t)])
                .unwrap_or_else(|e| refused("compute", &e));
            let (_, scores) = out.into_iter().next().expect("one output");
            let s: Vec<f32> = scores
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            let best = s
                .iter()
                .enumerate()
                .max_by(|x, y| x.1.total_cmp(y.1))
                .map(|(i, _)| i)
                .unwrap_or(0);
            println!(
                "scores {}",
                s.iter()
                    .map(|v| format!("{v:.3}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            println!("class {best}");
        }
        ["load-bytes"] => {
            // Any bytes: the host must refuse before looking at them.
            match graph::load(
                &[b"not a model".to_vec()],
                GraphEncoding::Onnx,
                ExecutionTarget::Cpu,
            ) {
                Ok(_) => println!("LEAK: the host loaded a model the guest supplied"),
                Err(e) => refused("load", &e),
            }
        }
        _ => {
            eprintln!("usage: see the source");
            std::process::exit(2)
        }
    }
}
