//! Every environment variable wpkg reads, in one place.

/// The wpkg home: the local store (`store/`) and caches (`cache/`) live here.
/// Default: `$XDG_DATA_HOME/wpkg`, else `~/.local/share/wpkg`.
pub const WPKG_HOME: &str = "WPKG_HOME";
/// Seconds since the Unix epoch used as the artifact's creation time, for
/// reproducible builds (default: 0, so builds are reproducible anyway).
pub const SOURCE_DATE_EPOCH: &str = "SOURCE_DATE_EPOCH";
/// Used to find the default home.
pub const XDG_DATA_HOME: &str = "XDG_DATA_HOME";
/// Used to find the default home.
pub const HOME: &str = "HOME";
