//! WXBizMsgCrypt: the signature and AES scheme of WeCom callbacks (its 加解密方案).
//!
//! - signature = lower-hex SHA1 of the byte-wise sorted concatenation of
//!   (token, timestamp, nonce, ciphertext), compared in constant time;
//! - key = base64(EncodingAESKey + "=") → 32 bytes (decoded leniently: WeCom keys carry
//!   non-zero trailing bits that strict decoders reject), IV = key[..16];
//! - plaintext = random(16) ‖ u32_be(len) ‖ msg ‖ receive_id, PKCS#7-padded to a multiple of
//!   **32** bytes (not the AES block size), AES-256-CBC, standard base64.
//!
//! Decryption is strict: every pad byte is checked, the length field must fit, and the
//! receive_id must equal the expected one (CorpID for the app, empty for the AI bot).
//! Pure functions only; no I/O, no logging.

use aes::Aes256;
use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use sha1::{Digest, Sha1};

use crate::util::{constant_time_eq, hex_lower};

/// WeCom pads to multiples of 32 bytes.
const PAD_BLOCK: usize = 32;

/// Standard alphabet, padding optional, trailing bits allowed: what WeCom's keys need.
const LENIENT_B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a callback (or a reply we build) failed the scheme. The official library codes are
/// kept for operators who compare with WeCom's documentation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("signature mismatch (-40001)")]
    SignatureMismatch,
    #[error("illegal EncodingAESKey (-40004)")]
    InvalidAesKey,
    #[error("receive_id mismatch (-40005)")]
    ReceiveIdMismatch,
    #[error("AES decryption failed: ciphertext length {0} is not a multiple of 16 (-40007)")]
    BadCiphertextLength(usize),
    #[error("illegal buffer after decryption: bad padding (-40008)")]
    BadPadding,
    #[error("illegal buffer after decryption: length field out of range (-40008)")]
    BadLength,
    #[error("decrypted message is not UTF-8 (-40008)")]
    NotUtf8,
    #[error("base64 decoding failed (-40010)")]
    Base64,
}

impl CryptoError {
    /// The WXBizMsgCrypt return code (`ierror.py`).
    pub fn code(&self) -> i32 {
        match self {
            CryptoError::SignatureMismatch => -40001,
            CryptoError::InvalidAesKey => -40004,
            CryptoError::ReceiveIdMismatch => -40005,
            CryptoError::BadCiphertextLength(_) => -40007,
            CryptoError::BadPadding | CryptoError::BadLength | CryptoError::NotUtf8 => -40008,
            CryptoError::Base64 => -40010,
        }
    }
}

/// Decode a 43-character EncodingAESKey into the 32-byte AES key.
pub fn decode_aes_key(encoding_aes_key: &str) -> Result<[u8; 32], CryptoError> {
    if encoding_aes_key.len() != 43 || !encoding_aes_key.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err(CryptoError::InvalidAesKey);
    }
    let bytes = LENIENT_B64
        .decode(encoding_aes_key)
        .map_err(|_| CryptoError::InvalidAesKey)?;
    bytes.try_into().map_err(|_| CryptoError::InvalidAesKey)
}

/// lower-hex SHA1 over the sorted concatenation of the four parts.
pub fn signature(token: &str, timestamp: &str, nonce: &str, encrypted: &str) -> String {
    let mut parts = [token, timestamp, nonce, encrypted];
    parts.sort_unstable();
    let mut h = Sha1::new();
    for p in parts {
        h.update(p.as_bytes());
    }
    hex_lower(&h.finalize())
}

/// One configured callback endpoint: its Token, AES key and expected receive_id.
///
/// `Debug` is deliberately not derived: it would print the key.
#[derive(Clone)]
pub struct MsgCrypt {
    token: String,
    key: [u8; 32],
    receive_id: String,
}

impl std::fmt::Debug for MsgCrypt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MsgCrypt")
            .field("receive_id", &self.receive_id)
            .finish_non_exhaustive()
    }
}

impl MsgCrypt {
    /// `receive_id`: the CorpID for a self-built app, `""` for the AI bot.
    pub fn new(
        token: &str,
        encoding_aes_key: &str,
        receive_id: &str,
    ) -> Result<MsgCrypt, CryptoError> {
        Ok(MsgCrypt {
            token: token.to_owned(),
            key: decode_aes_key(encoding_aes_key)?,
            receive_id: receive_id.to_owned(),
        })
    }

    pub fn receive_id(&self) -> &str {
        &self.receive_id
    }

    /// The raw AES key, for decrypting AI-bot media downloads (same scheme, no envelope).
    pub fn aes_key(&self) -> &[u8; 32] {
        &self.key
    }

    pub fn sign(&self, timestamp: &str, nonce: &str, encrypted: &str) -> String {
        signature(&self.token, timestamp, nonce, encrypted)
    }

    pub fn verify(
        &self,
        msg_signature: &str,
        timestamp: &str,
        nonce: &str,
        encrypted: &str,
    ) -> Result<(), CryptoError> {
        let expected = self.sign(timestamp, nonce, encrypted);
        if constant_time_eq(expected.as_bytes(), msg_signature.as_bytes()) {
            Ok(())
        } else {
            Err(CryptoError::SignatureMismatch)
        }
    }

    /// Verify the signature, then decrypt. The order matters: nothing is decrypted for an
    /// unauthenticated sender.
    pub fn verify_and_decrypt(
        &self,
        msg_signature: &str,
        timestamp: &str,
        nonce: &str,
        encrypted: &str,
    ) -> Result<String, CryptoError> {
        self.verify(msg_signature, timestamp, nonce, encrypted)?;
        self.decrypt(encrypted)
    }

    /// Decrypt a base64 ciphertext and return the message, checking the receive_id.
    pub fn decrypt(&self, encrypted: &str) -> Result<String, CryptoError> {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(encrypted.trim())
            .map_err(|_| CryptoError::Base64)?;
        let plain = aes_decrypt(&self.key, &raw)?;
        if plain.len() < 20 {
            return Err(CryptoError::BadLength);
        }
        let len = u32::from_be_bytes([plain[16], plain[17], plain[18], plain[19]]) as usize;
        let body = &plain[20..];
        if len > body.len() {
            return Err(CryptoError::BadLength);
        }
        let (msg, receive_id) = body.split_at(len);
        if !constant_time_eq(receive_id, self.receive_id.as_bytes()) {
            return Err(CryptoError::ReceiveIdMismatch);
        }
        String::from_utf8(msg.to_vec()).map_err(|_| CryptoError::NotUtf8)
    }

    /// Encrypt `msg` with a fresh random prefix.
    pub fn encrypt(&self, msg: &str) -> String {
        let mut prefix = [0u8; 16];
        crate::util::random_bytes(&mut prefix);
        self.encrypt_with_prefix(msg, &prefix)
    }

    /// Encrypt with a caller-chosen 16-byte prefix (deterministic; used by test vectors).
    pub fn encrypt_with_prefix(&self, msg: &str, prefix: &[u8; 16]) -> String {
        let mut plain = Vec::with_capacity(20 + msg.len() + self.receive_id.len() + PAD_BLOCK);
        plain.extend_from_slice(prefix);
        let len = u32::try_from(msg.len()).unwrap_or(u32::MAX);
        plain.extend_from_slice(&len.to_be_bytes());
        plain.extend_from_slice(msg.as_bytes());
        plain.extend_from_slice(self.receive_id.as_bytes());
        base64::engine::general_purpose::STANDARD.encode(aes_encrypt(&self.key, plain))
    }
}

/// AES-256-CBC with IV = key[..16] and WeCom's 32-byte PKCS#7, applied to raw bytes.
pub fn aes_encrypt(key: &[u8; 32], mut plain: Vec<u8>) -> Vec<u8> {
    let pad = PAD_BLOCK - plain.len() % PAD_BLOCK;
    plain.resize(plain.len() + pad, pad as u8);
    let iv: [u8; 16] = key[..16].try_into().expect("key has 32 bytes");
    cbc::Encryptor::<Aes256>::new(key.into(), &iv.into()).encrypt_padded_vec::<NoPadding>(&plain)
}

/// Inverse of [`aes_encrypt`]: decrypt and strip the 1..=32 pad, checking every pad byte.
pub fn aes_decrypt(key: &[u8; 32], cipher: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if cipher.is_empty() || !cipher.len().is_multiple_of(16) {
        return Err(CryptoError::BadCiphertextLength(cipher.len()));
    }
    let iv: [u8; 16] = key[..16].try_into().expect("key has 32 bytes");
    let mut plain = cbc::Decryptor::<Aes256>::new(key.into(), &iv.into())
        .decrypt_padded_vec::<NoPadding>(cipher)
        .map_err(|_| CryptoError::BadPadding)?;
    let pad = *plain.last().ok_or(CryptoError::BadPadding)? as usize;
    if pad == 0 || pad > PAD_BLOCK || pad > plain.len() {
        return Err(CryptoError::BadPadding);
    }
    if !plain[plain.len() - pad..]
        .iter()
        .all(|&b| b as usize == pad)
    {
        return Err(CryptoError::BadPadding);
    }
    plain.truncate(plain.len() - pad);
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";

    fn crypt(receive_id: &str) -> MsgCrypt {
        MsgCrypt::new("QDG6eK", KEY, receive_id).expect("valid key")
    }

    #[test]
    fn key_decoding_is_lenient_but_checks_shape() {
        assert!(decode_aes_key(KEY).is_ok());
        assert_eq!(decode_aes_key("short"), Err(CryptoError::InvalidAesKey));
        let with_symbol = format!("{}+", &KEY[..42]);
        assert_eq!(
            decode_aes_key(&with_symbol),
            Err(CryptoError::InvalidAesKey)
        );
    }

    #[test]
    fn round_trip_with_every_pad_length() {
        let c = crypt("wwcorp");
        for n in 0..80 {
            let msg: String = "消息".repeat(n / 3) + &"x".repeat(n % 3);
            let enc = c.encrypt(&msg);
            assert_eq!(c.decrypt(&enc).expect("round trip"), msg);
        }
    }

    #[test]
    fn constant_time_eq_basics() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    #[test]
    fn pad_of_zero_or_over_32_is_rejected() {
        let key = decode_aes_key(KEY).expect("key");
        for bad in [0u8, 33, 200] {
            let plain = vec![bad; 64];
            let iv: [u8; 16] = key[..16].try_into().expect("16");
            let ct = cbc::Encryptor::<Aes256>::new((&key).into(), &iv.into())
                .encrypt_padded_vec::<NoPadding>(&plain);
            assert_eq!(
                aes_decrypt(&key, &ct),
                Err(CryptoError::BadPadding),
                "pad {bad}"
            );
        }
    }
}
