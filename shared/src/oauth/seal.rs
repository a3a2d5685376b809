//! Sealing token records: AES-256-GCM (aws-lc-rs, already linked for TLS) with a random nonce
//! per record, and the key's purpose bound in as associated data, so a record sealed for one
//! key (`oauth:` + its store key) cannot be moved under another and still open.
//!
//! The key comes from a secret (`TA_OAUTH_TOKEN_KEY_SECRET`, in Secrets Manager or the
//! environment): 32 bytes in base64, or any text of 32 characters or more (a generated secret),
//! whose SHA-256 is the key. Without one, each process makes its own, and tokens last as long as
//! it.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;

/// Why a record could not be sealed or opened. Never holds key material or plaintext.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("the token key is neither 32 bytes of base64 nor a text of 32 characters or more")]
    BadKey,
    #[error("no randomness for a nonce")]
    Random,
    #[error("the record does not open with this key (another key, or tampered)")]
    Open,
}

/// The key that seals and opens token records. No `Debug`: it prints nothing.
pub struct Seal {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl Seal {
    /// The key from the secret's value: 32 bytes of base64, or the SHA-256 of a long text.
    pub fn from_secret(text: &str) -> Result<Self, SealError> {
        let text = text.trim();
        match base64::engine::general_purpose::STANDARD.decode(text) {
            Ok(bytes) if bytes.len() == 32 => Self::from_bytes(&bytes),
            _ if text.chars().count() >= 32 => {
                Self::from_bytes(&<sha2::Sha256 as sha2::Digest>::digest(text.as_bytes()))
            }
            _ => Err(SealError::BadKey),
        }
    }

    /// A key of this process only.
    pub fn ephemeral() -> Result<Self, SealError> {
        let mut bytes = [0u8; 32];
        SystemRandom::new().fill(&mut bytes).map_err(|_| SealError::Random)?;
        Self::from_bytes(&bytes)
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, SealError> {
        let unbound = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| SealError::BadKey)?;
        Ok(Self { key: LessSafeKey::new(unbound), rng: SystemRandom::new() })
    }

    /// `nonce || ciphertext || tag` of `plain`, bound to `purpose`.
    pub fn seal(&self, purpose: &str, plain: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| SealError::Random)?;
        let mut body = plain.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(purpose.as_bytes()),
                &mut body,
            )
            .map_err(|_| SealError::Random)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// The plaintext of a record sealed for `purpose`.
    pub fn open(&self, purpose: &str, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < NONCE_LEN {
            return Err(SealError::Open);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Open)?;
        let mut body = body.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(purpose.as_bytes()), &mut body)
            .map_err(|_| SealError::Open)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_opens_only_with_its_key_and_purpose_and_hides_its_content() {
        let key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let seal = Seal::from_secret(&key).expect("key");
        let sealed = seal.seal("oauth:a", b"access-token-123").expect("sealed");
        assert!(!sealed.windows(6).any(|w| w == b"access"), "the token is not readable in the store");
        assert_eq!(seal.open("oauth:a", &sealed).expect("opens"), b"access-token-123");
        assert!(matches!(seal.open("oauth:b", &sealed), Err(SealError::Open)), "moved under another key");
        let other = Seal::ephemeral().expect("other key");
        assert!(matches!(other.open("oauth:a", &sealed), Err(SealError::Open)));
        assert!(matches!(Seal::from_secret("c2hvcnQ="), Err(SealError::BadKey)));
        let generated =
            Seal::from_secret("Gx7Kq2Vb9LmN4pR8sT1wY6zA3cE5fH0jKd").expect("a long generated text");
        let sealed = generated.seal("p", b"x").expect("sealed");
        assert_eq!(
            Seal::from_secret("Gx7Kq2Vb9LmN4pR8sT1wY6zA3cE5fH0jKd")
                .expect("same")
                .open("p", &sealed)
                .expect("opens"),
            b"x"
        );
        assert_ne!(seal.seal("p", b"x").expect("1"), seal.seal("p", b"x").expect("2"), "a nonce per record");
    }
}
