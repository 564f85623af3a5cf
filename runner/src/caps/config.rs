//! Configuration (`wasi:config/store@0.2.0-rc.1`): the guest reads exactly the values
//! the plan holds (declared keys with a default or an operator's value); any other key
//! reads as unset, and `get-all` lists only those.

use std::sync::Arc;

use wasmtime::component::Linker;
use wasmtime_wasi_config::{WasiConfig, WasiConfigVariables};
use wpkg_spec::plan::RunPlan;

use crate::host::HostState;

/// The values of one run or server, shared by its instances.
pub type Values = Arc<WasiConfigVariables>;

/// The values the plan grants.
pub fn values(plan: &RunPlan) -> Values {
    Arc::new(
        plan.config
            .values
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect(),
    )
}

/// The capability: granted when the manifest has a `[config]` table.
pub struct Config;

impl crate::host::Capability for Config {
    fn name(&self) -> &'static str {
        "configuration"
    }
    fn interfaces(&self) -> &'static [&'static str] {
        &["wasi:config/"]
    }
    fn granted(&self, plan: &RunPlan) -> bool {
        plan.config.declared
    }
    fn declaration(&self) -> &'static str {
        "a [config] table naming the keys it reads"
    }
    fn add_to_linker(&self, linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        wasmtime_wasi_config::add_to_linker(linker, |s: &mut HostState| {
            WasiConfig::from(&*s.config)
        })
    }
}
