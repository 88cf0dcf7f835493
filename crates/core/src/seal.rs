//! Sealing bytes to several recipients (issue 12), sans-IO: bundles travel over chat apps and USB
//! sticks, so their contents are encrypted to whoever may read them — the group's box key and the
//! server's — and to nobody else.
//!
//! - The plaintext is encrypted once with XChaCha20-Poly1305 under a fresh random **content key**,
//!   with the caller's associated data (a bundle binds its header so).
//! - The content key is **wrapped** once per recipient: an ephemeral X25519 key (fresh per
//!   recipient) agrees a secret with the recipient's static public key; HKDF-SHA256 (salt: the
//!   ephemeral and the recipient's public keys, info: the domain and the recipient's id) derives a
//!   key-encryption key, and XChaCha20-Poly1305 under it encrypts the content key.
//!
//! Only well-kept RustCrypto and dalek primitives are used; nothing is hand-rolled. Randomness
//! comes from the caller (`fill`), as everywhere in the core: this module reads no random source.
//! Decoding and opening never panic on bad bytes and never allocate more than the bytes present.
//!
//! Layout of [`Sealed::encode`] (all integers little-endian):
//!
//! ```text
//! version u8 (=1) | nonce [24] | recipient count u16 |
//!   per recipient: id length u8 | id (UTF-8) | ephemeral public [32] | wrapped key [48]
//! | ciphertext (the rest: plaintext length + 16-byte tag)
//! ```

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use sha2::Sha256;

/// Encoding version of [`Sealed`].
pub const SEAL_VERSION: u8 = 1;
const WRAP_INFO: &[u8] = b"sanjin-seal-v1 wrap\0";
const BODY_DOMAIN: &[u8] = b"sanjin-seal-v1 body\0";
/// A wrapped content key: 32 bytes and the 16-byte tag.
const WRAPPED_LEN: usize = 48;
const TAG_LEN: usize = 16;
/// The longest recipient id (`group:<g>:<epoch>`, `server`).
pub const MAX_ID_LEN: usize = 255;

/// Why sealed bytes could not be read or opened. Never a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The bytes are not a sealed box of this version, or are cut short.
    #[error("the sealed bytes are damaged: {0}")]
    Damaged(&'static str),
    /// No recipient entry carries this id.
    #[error("the contents are not sealed to {0}")]
    NotForUs(String),
    /// The entry for this id does not open with the key given (another key, or tampered).
    #[error("the key for {0} does not open the contents")]
    WrongKey(String),
    /// The content key opened but the ciphertext or the associated data was changed.
    #[error("the sealed contents were changed")]
    Tampered,
    /// A recipient's public key is not usable (a low-order point) or an id is too long.
    #[error("cannot seal to recipient {0}")]
    BadRecipient(String),
}

/// A static X25519 secret: a group's or the server's box key, which bundles are sealed to. Its
/// seed is the only secret; `Debug` shows the public key only.
#[derive(Clone)]
pub struct BoxSecret(x25519_dalek::StaticSecret);

impl std::fmt::Debug for BoxSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BoxSecret({})", hex(&self.public()))
    }
}

impl BoxSecret {
    /// The secret for a 32-byte seed the caller drew from a secure random source.
    pub fn from_seed(seed: [u8; 32]) -> BoxSecret {
        BoxSecret(x25519_dalek::StaticSecret::from(seed))
    }

    /// The public key recipients are named by.
    pub fn public(&self) -> [u8; 32] {
        x25519_dalek::PublicKey::from(&self.0).to_bytes()
    }

    /// The secret, hex (64 characters), to keep in a store.
    pub fn to_hex(&self) -> String {
        hex(self.0.as_bytes())
    }

    /// The secret from its hex, `None` unless it is 64 hex digits.
    pub fn from_hex(s: &str) -> Option<BoxSecret> {
        let b: [u8; 32] = unhex(s)?.try_into().ok()?;
        Some(BoxSecret::from_seed(b))
    }
}

/// One recipient's entry: its id, the ephemeral public key of the exchange, the wrapped content
/// key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub id: String,
    pub ephemeral: [u8; 32],
    pub wrapped: [u8; WRAPPED_LEN],
}

/// Bytes sealed to several recipients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub nonce: [u8; 24],
    pub recipients: Vec<Recipient>,
    pub ciphertext: Vec<u8>,
}

fn kek(shared: &[u8; 32], ephemeral: &[u8; 32], public: &[u8; 32], id: &str) -> [u8; 32] {
    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(ephemeral);
    salt[32..].copy_from_slice(public);
    let hk = Hkdf::<Sha256>::new(Some(&salt), shared);
    let mut info = Vec::with_capacity(WRAP_INFO.len() + id.len());
    info.extend_from_slice(WRAP_INFO);
    info.extend_from_slice(id.as_bytes());
    let mut out = [0u8; 32];
    hk.expand(&info, &mut out)
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    out
}

fn body_aad(aad: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(BODY_DOMAIN.len() + aad.len());
    v.extend_from_slice(BODY_DOMAIN);
    v.extend_from_slice(aad);
    v
}

/// Seals `plain` (bound to `aad`, which is not encrypted and must be given again to open) to
/// each recipient `(id, X25519 public key)`. `fill` gives random bytes (32 for the content key,
/// 24 for the nonce, 32 per recipient for its ephemeral key).
pub fn seal(
    plain: &[u8],
    aad: &[u8],
    recipients: &[(String, [u8; 32])],
    fill: &mut dyn FnMut(&mut [u8]),
) -> Result<Sealed, SealError> {
    let mut content_key = [0u8; 32];
    fill(&mut content_key);
    let mut nonce = [0u8; 24];
    fill(&mut nonce);
    let mut entries = Vec::with_capacity(recipients.len());
    for (id, public) in recipients {
        if id.len() > MAX_ID_LEN {
            return Err(SealError::BadRecipient(id.clone()));
        }
        let mut seed = [0u8; 32];
        fill(&mut seed);
        let eph = x25519_dalek::StaticSecret::from(seed);
        let eph_public = x25519_dalek::PublicKey::from(&eph).to_bytes();
        let shared = eph.diffie_hellman(&x25519_dalek::PublicKey::from(*public));
        if !shared.was_contributory() {
            return Err(SealError::BadRecipient(id.clone()));
        }
        let k = kek(shared.as_bytes(), &eph_public, public, id);
        let wrapped = XChaCha20Poly1305::new((&k).into())
            .encrypt(XNonce::from_slice(&[0u8; 24]), content_key.as_slice())
            .expect("encrypting 32 bytes cannot fail");
        entries.push(Recipient {
            id: id.clone(),
            ephemeral: eph_public,
            wrapped: wrapped
                .try_into()
                .expect("32 bytes and a 16-byte tag are 48 bytes"),
        });
    }
    let ciphertext = XChaCha20Poly1305::new((&content_key).into())
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plain,
                aad: &body_aad(aad),
            },
        )
        .expect("XChaCha20-Poly1305 encrypts any length the process can hold");
    Ok(Sealed {
        nonce,
        recipients: entries,
        ciphertext,
    })
}

/// Opens `sealed` as recipient `id` with its `secret`, checking `aad`.
pub fn open(
    sealed: &Sealed,
    aad: &[u8],
    id: &str,
    secret: &BoxSecret,
) -> Result<Vec<u8>, SealError> {
    let mut seen = false;
    for r in sealed.recipients.iter().filter(|r| r.id == id) {
        seen = true;
        if let Some(key) = unwrap_key(r, secret) {
            return XChaCha20Poly1305::new((&key).into())
                .decrypt(
                    XNonce::from_slice(&sealed.nonce),
                    Payload {
                        msg: &sealed.ciphertext,
                        aad: &body_aad(aad),
                    },
                )
                .map_err(|_| SealError::Tampered);
        }
    }
    Err(if seen {
        SealError::WrongKey(id.to_string())
    } else {
        SealError::NotForUs(id.to_string())
    })
}

fn unwrap_key(r: &Recipient, secret: &BoxSecret) -> Option<[u8; 32]> {
    let shared = secret
        .0
        .diffie_hellman(&x25519_dalek::PublicKey::from(r.ephemeral));
    if !shared.was_contributory() {
        return None;
    }
    let k = kek(shared.as_bytes(), &r.ephemeral, &secret.public(), &r.id);
    let key = XChaCha20Poly1305::new((&k).into())
        .decrypt(XNonce::from_slice(&[0u8; 24]), r.wrapped.as_slice())
        .ok()?;
    key.try_into().ok()
}

impl Sealed {
    /// The recipients' ids, in order.
    pub fn recipient_ids(&self) -> impl Iterator<Item = &str> {
        self.recipients.iter().map(|r| r.id.as_str())
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            27 + self.recipients.len() * (1 + 32 + WRAPPED_LEN + 16) + self.ciphertext.len(),
        );
        out.push(SEAL_VERSION);
        out.extend_from_slice(&self.nonce);
        out.extend_from_slice(&(self.recipients.len().min(u16::MAX as usize) as u16).to_le_bytes());
        for r in self.recipients.iter().take(u16::MAX as usize) {
            let id = &r.id.as_bytes()[..r.id.len().min(MAX_ID_LEN)];
            out.push(id.len() as u8);
            out.extend_from_slice(id);
            out.extend_from_slice(&r.ephemeral);
            out.extend_from_slice(&r.wrapped);
        }
        out.extend_from_slice(&self.ciphertext);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Sealed, SealError> {
        let mut r = bytes;
        let version = take(&mut r, 1)?[0];
        if version != SEAL_VERSION {
            return Err(SealError::Damaged("unknown sealing version"));
        }
        let nonce: [u8; 24] = take(&mut r, 24)?.try_into().expect("24 bytes");
        let n = u16::from_le_bytes(take(&mut r, 2)?.try_into().expect("2 bytes")) as usize;
        // Every entry takes at least 81 bytes: no count can reserve more than the bytes justify.
        if n.saturating_mul(1 + 32 + WRAPPED_LEN) > r.len() {
            return Err(SealError::Damaged("truncated recipient list"));
        }
        let mut recipients = Vec::with_capacity(n);
        for _ in 0..n {
            let len = take(&mut r, 1)?[0] as usize;
            let id = std::str::from_utf8(take(&mut r, len)?)
                .map_err(|_| SealError::Damaged("recipient id is not UTF-8"))?
                .to_string();
            let ephemeral: [u8; 32] = take(&mut r, 32)?.try_into().expect("32 bytes");
            let wrapped: [u8; WRAPPED_LEN] =
                take(&mut r, WRAPPED_LEN)?.try_into().expect("48 bytes");
            recipients.push(Recipient {
                id,
                ephemeral,
                wrapped,
            });
        }
        if r.len() < TAG_LEN {
            return Err(SealError::Damaged("truncated ciphertext"));
        }
        Ok(Sealed {
            nonce,
            recipients,
            ciphertext: r.to_vec(),
        })
    }
}

fn take<'a>(r: &mut &'a [u8], n: usize) -> Result<&'a [u8], SealError> {
    if r.len() < n {
        return Err(SealError::Damaged("truncated"));
    }
    let (a, b) = r.split_at(n);
    *r = b;
    Ok(a)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic `fill` for tests (a counter through SHA-256): never a real random source.
    pub(crate) fn counter_fill(seed: u8) -> impl FnMut(&mut [u8]) {
        use sha2::Digest;
        let mut n = 0u64;
        move |buf: &mut [u8]| {
            for chunk in buf.chunks_mut(32) {
                n += 1;
                let d = Sha256::digest([&[seed][..], &n.to_le_bytes()].concat());
                chunk.copy_from_slice(&d[..chunk.len()]);
            }
        }
    }

    #[test]
    fn issue12_seal_opens_for_each_of_two_recipients_and_no_other_key() {
        let group = BoxSecret::from_seed([1; 32]);
        let server = BoxSecret::from_seed([2; 32]);
        let stranger = BoxSecret::from_seed([3; 32]);
        let to = vec![
            ("group:g1:1".to_string(), group.public()),
            ("server".to_string(), server.public()),
        ];
        let plain = "张三 走访记录".as_bytes();
        let sealed = seal(plain, b"header", &to, &mut counter_fill(7)).unwrap();
        let bytes = sealed.encode();
        assert!(
            !bytes.windows(plain.len()).any(|w| w == plain),
            "the plaintext does not show in the sealed bytes"
        );
        let back = Sealed::decode(&bytes).unwrap();
        assert_eq!(back, sealed);
        assert_eq!(
            back.recipient_ids().collect::<Vec<_>>(),
            ["group:g1:1", "server"]
        );
        assert_eq!(open(&back, b"header", "group:g1:1", &group).unwrap(), plain);
        assert_eq!(open(&back, b"header", "server", &server).unwrap(), plain);
        // A wrong key under a recipient's id, an id not sealed to, other associated data.
        assert_eq!(
            open(&back, b"header", "server", &stranger),
            Err(SealError::WrongKey("server".into()))
        );
        assert_eq!(
            open(&back, b"header", "server", &group),
            Err(SealError::WrongKey("server".into()))
        );
        assert_eq!(
            open(&back, b"header", "group:g2:1", &stranger),
            Err(SealError::NotForUs("group:g2:1".into()))
        );
        assert_eq!(
            open(&back, b"other", "server", &server),
            Err(SealError::Tampered)
        );
        // Hex round trip; Debug shows no secret.
        let again = BoxSecret::from_hex(&group.to_hex()).unwrap();
        assert_eq!(again.public(), group.public());
        assert!(!format!("{group:?}").contains(&group.to_hex()));
        assert!(BoxSecret::from_hex("zz").is_none() && BoxSecret::from_hex("ab").is_none());
    }

    #[test]
    fn issue12_every_flipped_byte_of_a_sealed_box_fails_without_panicking() {
        let k = BoxSecret::from_seed([4; 32]);
        let to = vec![("server".to_string(), k.public())];
        let bytes = seal(b"hello", b"", &to, &mut counter_fill(1))
            .unwrap()
            .encode();
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x01;
            let ok = Sealed::decode(&b)
                .ok()
                .and_then(|s| open(&s, b"", "server", &k).ok());
            assert_ne!(ok.as_deref(), Some(&b"hello"[..]), "byte {i} flipped");
            assert!(ok.is_none(), "byte {i} flipped still opens");
        }
        for n in 0..bytes.len() {
            let cut = Sealed::decode(&bytes[..n])
                .ok()
                .and_then(|s| open(&s, b"", "server", &k).ok());
            assert!(cut.is_none(), "cut at {n}");
        }
        // A low-order public key cannot be sealed to.
        assert!(matches!(
            seal(b"x", b"", &[("bad".into(), [0; 32])], &mut counter_fill(2)),
            Err(SealError::BadRecipient(_))
        ));
        // A count that claims more recipients than bytes: refused before allocating.
        let mut huge = vec![SEAL_VERSION];
        huge.extend_from_slice(&[0; 24]);
        huge.extend_from_slice(&u16::MAX.to_le_bytes());
        assert!(Sealed::decode(&huge).is_err());
    }
}
