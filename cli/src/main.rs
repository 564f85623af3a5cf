//! # wpkg
//!
//! The `wpkg` command: clap argument structs, one per command, each with `run()`,
//! calling into `wpkg-oci` and `wpkg-runner`. Data goes to stdout; logs, progress and
//! hints to stderr.

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use wpkg_pipeline::timings;

mod commands;
mod diagnostics;
mod env_vars;
mod identity;
mod policy;
mod project;
mod remote;
mod scaffold;
mod settings;
mod signing;

/// Exit code for wpkg's own failures (bad reference, bad manifest, store error...).
pub const EXIT_WPKG: u8 = 125;

#[derive(Parser)]
#[command(
    name = "wpkg",
    version,
    about = "Build, store and run server-side WebAssembly with deny-by-default permissions",
    long_about = "wpkg packs a .wasm and its capability manifest (wpkg.toml) into an OCI artifact \
and runs it under wasmtime with exactly the permissions the manifest declares: no files, \
environment, network or DNS unless declared.",
    after_help = "Exit codes of `wpkg run`: the guest's own exit code; 124 time limit; 134 trap; \
137 memory limit; 125 wpkg's own failure.\nEnvironment: WPKG_HOME (store and caches; default ~/.local/share/wpkg), SOURCE_DATE_EPOCH, DOCKER_CONFIG (registry credentials; default ~/.docker), REGISTRY_AUTH_FILE (podman/skopeo auth.json, read after Docker's config), WPKG_CA_FILE, WPKG_INSECURE_REGISTRIES, WPKG_REGISTRY_TIMEOUT, WPKG_TRUST_POLICY, WPKG_TUF_URL and WPKG_TUF_ROOT (a private Sigstore's TUF repository for the trust root), WPKG_TSA_URL, COSIGN_PASSWORD (key password), WPKG_TIMINGS (print how long each phase took), WPKG_MAX_LAYER_SIZE and WPKG_MAX_FILE_SIZE (bounds on unpacking an image's layers; default 1GiB and 512MiB), and for CI WPKG_REGISTRY with \
WPKG_REGISTRY_USERNAME and WPKG_REGISTRY_PASSWORD."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// `defer`: each command's arguments are built only when that command is the one
// given, not all of them on every start (a warm `wpkg run` spent 0.2 ms building them).
// Each command's one-line description is repeated on its variant so that the list in
// `wpkg --help` has it without building the commands (a test compares the two).
#[derive(Subcommand)]
#[command(defer = true)]
enum Command {
    /// Start a project from a template (no network needed)
    New(commands::new::NewArgs),
    /// Pack a .wasm and its wpkg.toml into an OCI artifact in the local store
    Build(commands::build::BuildArgs),
    /// Run an image (or a project directory) with exactly its declared permissions
    Run(commands::run::RunArgs),
    /// List the images in the local store
    Images(commands::images::ImagesArgs),
    /// Show an image's manifest, config and permissions in plain words
    Inspect(commands::inspect::InspectArgs),
    /// Give a local image another name
    Tag(commands::tag::TagArgs),
    /// Remove images from the local store (blobs no other image uses are deleted)
    Rm(commands::rm::RmArgs),
    /// Push an image from the local store to a registry
    Push(commands::push::PushArgs),
    /// Pull an image from a registry into the local store
    Pull(commands::push::PullArgs),
    /// Make a signing key pair in cosign's format
    Keygen(commands::sign::KeygenArgs),
    /// Sign an image in the local store (cosign-compatible), with a key or keyless
    Sign(commands::sign::SignArgs),
    /// Verify an image's signatures against keys or the trust policy
    Verify(commands::verify::VerifyArgs),
    /// Sign a file into a Sigstore bundle (like cosign sign-blob)
    SignBlob(commands::blob::SignBlobArgs),
    /// Verify a file's Sigstore bundle (like cosign verify-blob)
    VerifyBlob(commands::blob::VerifyBlobArgs),
    /// Manage the trust policy: which keys may sign which references
    Trust(commands::trust::TrustArgs),
    /// Log in to a registry (shared with `docker login`)
    Login(commands::login::LoginArgs),
    /// Log out of a registry (removes the saved credentials)
    Logout(commands::login::LogoutArgs),
    /// Write images, with their signatures, to an OCI layout tar file
    Save(commands::save::SaveArgs),
    /// Load images (and their signatures) from an OCI layout tar file (plain or gzip)
    Load(commands::save::LoadArgs),
    /// Print the JSON schema of wpkg.toml (for editors and CI validation)
    Schema(commands::schema::SchemaArgs),
    /// Print shell completions for wpkg
    Completions(commands::completions::CompletionsArgs),
    /// Write man pages for wpkg and each command (wpkg.1, wpkg-run.1, ...)
    #[command(hide = true)]
    Man(commands::completions::ManArgs),
}

fn main() -> ExitCode {
    let timed = std::env::var_os(env_vars::WPKG_TIMINGS).is_some_and(|v| !v.is_empty());
    if timed {
        timings::enable();
    }
    let cli = Cli::parse();
    timings::mark("arguments");
    let result = match cli.command {
        Command::New(a) => a.run(),
        Command::Build(a) => a.run(),
        Command::Run(a) => a.run(),
        Command::Images(a) => a.run(),
        Command::Inspect(a) => a.run(),
        Command::Tag(a) => a.run(),
        Command::Rm(a) => a.run(),
        Command::Push(a) => a.run(),
        Command::Pull(a) => a.run(),
        Command::Keygen(a) => a.run(),
        Command::Sign(a) => a.run(),
        Command::Verify(a) => a.run(),
        Command::SignBlob(a) => a.run(),
        Command::VerifyBlob(a) => a.run(),
        Command::Trust(a) => a.run(),
        Command::Login(a) => a.run(),
        Command::Logout(a) => a.run(),
        Command::Save(a) => a.run(),
        Command::Load(a) => a.run(),
        Command::Schema(a) => a.run(),
        Command::Completions(a) => a.run(Cli::command()),
        Command::Man(a) => a.run(Cli::command()),
    };
    if timed {
        timings::mark("rest of the command");
        print_timings();
    }
    match result {
        Ok(code) => code,
        Err(e) => {
            // A closed stdout (`wpkg images | head`) is not an error.
            if is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            eprintln!("{}", diagnostics::render(&e));
            ExitCode::from(EXIT_WPKG)
        }
    }
}

/// The phases of this process on stderr, in milliseconds, and their sum.
fn print_timings() {
    let phases = timings::phases();
    let total: std::time::Duration = phases.iter().map(|(_, d)| *d).sum();
    let mut line = String::from("timings (ms):");
    for (name, took) in &phases {
        line.push_str(&format!(" {name} {:.3};", took.as_secs_f64() * 1e3));
    }
    eprintln!("{line} total {:.3}", total.as_secs_f64() * 1e3);
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn clap_debug_assert() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }

    /// The one-line description on each `Command` variant (what `wpkg --help` lists
    /// without building the commands) is the one its arguments struct gives.
    #[test]
    fn command_descriptions_match_their_arguments() {
        use clap::CommandFactory;
        for sub in super::Cli::command().get_subcommands() {
            let listed = sub.get_about().map(|a| a.to_string());
            let mut built = sub.clone();
            built.build();
            let own = built.get_about().map(|a| a.to_string());
            assert_eq!(listed, own, "`wpkg {}`", sub.get_name());
        }
    }
}
