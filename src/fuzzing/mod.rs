//! The properties the fuzz targets (`fuzz/`) check, in one place both they and the corpus replay
//! test (`tests/it/fuzz_corpus.rs`) call, so the committed corpus is enforced on every `cargo test`
//! even where cargo-fuzz is not installed.
//!
//! Each `check_*` takes the raw fuzz input, feeds it to the real parser, and panics (an
//! `assert!`) when a property fails; inputs the parser refuses are fine as long as the refusal is
//! the documented one. Nothing here is used by the server itself.
//!
//! - [`ws`]: socket frames → `ClientMsg` or the `error` reply ([`crate::ws::parse_request`]).
//! - [`sign`]: PLYR body canonicalisation ([`crate::facade::game::sign::js_stringify`]) and the
//!   HMAC check ([`crate::facade::game::sign::authenticate`]).
//! - [`video`]: Digital Samba bodies, phone `joined`/`left` batches and list query strings.
//! - [`lobby`]: PlayFlow lobby bodies (create, update, add player, player id).
//! - [`config`]: the TOML configuration file through [`crate::config::Settings::from_file`].

pub mod config;
pub mod lobby;
pub mod sign;
pub mod video;
pub mod ws;

/// A property check over one raw input: panics when a property fails.
pub type Check = fn(&[u8]);

/// The fuzz targets, by name (`fuzz/fuzz_targets/<name>.rs`, corpus `fuzz/corpus/<name>/`), with
/// the check each runs.
pub const TARGETS: [(&str, Check); 5] = [
    ("ws_message", ws::check),
    ("plyr_sign", sign::check),
    ("video_body", video::check),
    ("lobby_body", lobby::check),
    ("config_toml", config::check),
];
