//! Secrets in SOPS files with age keys. Reading files written by the real `sops` lands first;
//! writing, the pipeline's decryption and masking in every output build on it.

pub mod encrypt;
pub mod mask;
pub mod shamir;
pub mod sops;

pub use encrypt::{Settings, encrypt_document, rewrap, settings_for, settings_of};
pub use mask::Masker;
pub use sops::{Decrypted, Identities, decrypt_document, is_encrypted};
