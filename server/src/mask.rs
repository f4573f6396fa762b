//! Masking in the server's listings: the engine's one set of rules
//! (`jiuzhu_engine::privacy`), so the CLI, the API and the pages show the same masks.

pub use jiuzhu_engine::privacy::{mask_account, mask_id_number, mask_name};

/// Masks every personal-data field of `value` in place (see
/// [`jiuzhu_engine::privacy::mask_json`]).
pub fn mask_json(value: &mut serde_json::Value) {
    *value = jiuzhu_engine::privacy::mask_json(value);
}
