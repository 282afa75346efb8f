//! WXBizMsgCrypt against the 14 verified vectors, plus negative cases.

use serde_json::Value;
use wecom_helpdesk::wecom::crypto::{self, CryptoError, MsgCrypt};

fn vectors() -> Vec<Value> {
    let text = std::fs::read_to_string(
        super::common::repo_root().join("tests/fixtures/wecom-vectors.json"),
    )
    .expect("vectors file");
    serde_json::from_str(&text).expect("vectors parse")
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str()
        .unwrap_or_else(|| panic!("{k} in {}", v["id"]))
}

fn crypt(v: &Value) -> MsgCrypt {
    MsgCrypt::new(s(v, "token"), s(v, "encoding_aes_key"), s(v, "receive_id")).expect("key decodes")
}

#[test]
fn all_fourteen_vectors_pass() {
    let vs = vectors();
    assert_eq!(vs.len(), 14);
    for v in &vs {
        let id = s(v, "id");
        let c = crypt(v);
        let cipher = v["encrypt"]
            .as_str()
            .or_else(|| v["echostr"].as_str())
            .expect("ciphertext");
        match s(v, "kind") {
            "url_verify" | "callback_decrypt" => {
                let plain = c
                    .verify_and_decrypt(
                        s(v, "msg_signature"),
                        s(v, "timestamp"),
                        s(v, "nonce"),
                        cipher,
                    )
                    .unwrap_or_else(|e| panic!("{id}: {e}"));
                assert_eq!(plain, s(v, "expected_plaintext"), "{id}");
            }
            "reply_encrypt" => {
                let prefix: [u8; 16] = s(v, "random_prefix")
                    .as_bytes()
                    .try_into()
                    .expect("16-byte prefix");
                let enc = c.encrypt_with_prefix(s(v, "expected_plaintext"), &prefix);
                assert_eq!(enc, cipher, "{id}: ciphertext reproduced byte for byte");
                assert_eq!(
                    c.sign(s(v, "timestamp"), s(v, "nonce"), &enc),
                    s(v, "msg_signature"),
                    "{id}"
                );
                assert_eq!(
                    c.decrypt(&enc).expect("decrypts"),
                    s(v, "expected_plaintext")
                );
            }
            other => panic!("{id}: unknown kind {other}"),
        }
        // The negatives the vector file itself names.
        if let Some(neg) = v.get("negative") {
            let sig = neg["msg_signature"]
                .as_str()
                .unwrap_or(s(v, "msg_signature"));
            let nonce = neg["nonce"].as_str().unwrap_or(s(v, "nonce"));
            assert_eq!(
                c.verify_and_decrypt(sig, s(v, "timestamp"), nonce, cipher),
                Err(CryptoError::SignatureMismatch),
                "{id}: negative"
            );
        }
    }
}

#[test]
fn keys_that_strict_base64_rejects_still_decode() {
    // 13 of the 14 keys carry non-zero trailing bits in their last base64 character, which a
    // strict decoder refuses; WeCom's own libraries decode them.
    for v in vectors() {
        assert!(
            crypto::decode_aes_key(s(&v, "encoding_aes_key")).is_ok(),
            "{}",
            v["id"]
        );
    }
}

fn sample() -> (MsgCrypt, Value) {
    let v = vectors()
        .into_iter()
        .find(|v| v["id"] == "official-decrypt-xml")
        .expect("vector");
    (crypt(&v), v)
}

#[test]
fn tampered_ciphertext_fails_the_signature() {
    let (c, v) = sample();
    let mut enc = s(&v, "encrypt").to_owned();
    let flipped = if enc.starts_with('R') { "S" } else { "R" };
    enc.replace_range(0..1, flipped);
    assert_eq!(
        c.verify_and_decrypt(
            s(&v, "msg_signature"),
            s(&v, "timestamp"),
            s(&v, "nonce"),
            &enc
        ),
        Err(CryptoError::SignatureMismatch)
    );
    // And even when re-signed by someone holding the token, the AES layer refuses it.
    let resigned = c.sign(s(&v, "timestamp"), s(&v, "nonce"), &enc);
    assert!(
        c.verify_and_decrypt(&resigned, s(&v, "timestamp"), s(&v, "nonce"), &enc)
            .is_err()
    );
}

#[test]
fn wrong_receive_id_is_refused() {
    let (_, v) = sample();
    let other =
        MsgCrypt::new(s(&v, "token"), s(&v, "encoding_aes_key"), "wwSomeoneElse").expect("key");
    assert_eq!(
        other.verify_and_decrypt(
            s(&v, "msg_signature"),
            s(&v, "timestamp"),
            s(&v, "nonce"),
            s(&v, "encrypt")
        ),
        Err(CryptoError::ReceiveIdMismatch)
    );
    // The AI bot's empty receive_id is not a wildcard either.
    let bot = MsgCrypt::new(s(&v, "token"), s(&v, "encoding_aes_key"), "").expect("key");
    assert_eq!(
        bot.decrypt(s(&v, "encrypt")),
        Err(CryptoError::ReceiveIdMismatch)
    );
}

#[test]
fn wrong_nonce_timestamp_or_token_fail_the_signature() {
    let (c, v) = sample();
    let (sig, ts, nonce, enc) = (
        s(&v, "msg_signature"),
        s(&v, "timestamp"),
        s(&v, "nonce"),
        s(&v, "encrypt"),
    );
    assert_eq!(
        c.verify(sig, ts, "1372623150", enc),
        Err(CryptoError::SignatureMismatch)
    );
    assert_eq!(
        c.verify(sig, "1409659814", nonce, enc),
        Err(CryptoError::SignatureMismatch)
    );
    let other =
        MsgCrypt::new("OtherToken", s(&v, "encoding_aes_key"), s(&v, "receive_id")).expect("key");
    assert_eq!(
        other.verify(sig, ts, nonce, enc),
        Err(CryptoError::SignatureMismatch)
    );
    assert_eq!(
        c.verify(&sig.to_uppercase(), ts, nonce, enc),
        Err(CryptoError::SignatureMismatch)
    );
}

#[test]
fn bad_base64_and_bad_lengths() {
    let (c, _) = sample();
    assert_eq!(c.decrypt("not base64!!"), Err(CryptoError::Base64));
    assert_eq!(c.decrypt("AAAA"), Err(CryptoError::BadCiphertextLength(3)));
    assert_eq!(c.decrypt(""), Err(CryptoError::BadCiphertextLength(0)));
}

#[test]
fn bad_padding_is_refused() {
    let (c, _) = sample();
    let key = crypto::decode_aes_key("jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C").expect("key");
    // Valid layout, then corrupt the last pad byte: the pad bytes no longer agree.
    let mut plain = vec![b'r'; 16];
    plain.extend_from_slice(&5u32.to_be_bytes());
    plain.extend_from_slice(b"hello");
    plain.extend_from_slice(b"wx5823bf96d3bd56c7");
    let good = crypto::aes_encrypt(&key, plain.clone());
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    assert_eq!(c.decrypt(&b64(&good)).expect("good"), "hello");
    let pad = 32 - plain.len() % 32;
    let mut bad = plain.clone();
    bad.extend(std::iter::repeat_n(pad as u8, pad - 1));
    bad.push(pad as u8 + 1);
    // Encrypt the mis-padded buffer raw (it is block-aligned already).
    let key_arr: [u8; 32] = key;
    let enc = crypto::aes_encrypt(&key_arr, bad);
    // aes_encrypt added a full 32-byte pad block; strip it to leave our bad pad last.
    let enc = &enc[..enc.len() - 32];
    assert_eq!(c.decrypt(&b64(enc)), Err(CryptoError::BadPadding));
}

#[test]
fn length_field_beyond_the_buffer_is_refused() {
    let (c, _) = sample();
    let key = crypto::decode_aes_key("jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C").expect("key");
    let mut plain = vec![b'r'; 16];
    plain.extend_from_slice(&9999u32.to_be_bytes());
    plain.extend_from_slice(b"short");
    use base64::Engine;
    let enc = base64::engine::general_purpose::STANDARD.encode(crypto::aes_encrypt(&key, plain));
    assert_eq!(c.decrypt(&enc), Err(CryptoError::BadLength));
}
