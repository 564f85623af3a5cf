//! Environment variables: the declared `env` and the operator's `env_required`
//! values, nothing inherited from the host.

use wasmtime_wasi::WasiCtxBuilder;
use wpkg_spec::plan::RunPlan;

/// Nothing to check on the host: the plan already refused undeclared names.
pub fn validate(_plan: &RunPlan) -> Result<(), crate::Error> {
    Ok(())
}

/// Sets exactly the planned variables.
pub fn apply(plan: &RunPlan, builder: &mut WasiCtxBuilder) {
    for (k, v) in &plan.env {
        builder.env(k, v);
    }
}
