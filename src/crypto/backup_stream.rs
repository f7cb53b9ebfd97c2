//! The encryption of backup files: AES-256-GCM in the STREAM construction (the `aead` crate's
//! `stream` module, big-endian 32-bit counter), so that a backup of any size is sealed and opened
//! in fixed chunks without holding it in memory, and a chunk cannot be dropped, reordered,
//! repeated or cut off the end without opening failing.
//!
//! Every chunk but the last holds exactly [`CHUNK_BYTES`] of plaintext; the last holds fewer
//! (possibly none) and is sealed as the last, so a reader knows where the stream ends from the
//! lengths alone. The backup key is its own key (`tokenvault backup new-key`), not the master
//! key: a backup file and the master key together still open nothing without it.

use std::io::{self, Read, Write};

use aes_gcm::aead::stream::{DecryptorBE32, EncryptorBE32};
use aes_gcm::aead::{KeyInit, Payload};
use aes_gcm::Aes256Gcm;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::CryptoError;

/// Plaintext bytes per sealed chunk.
pub const CHUNK_BYTES: usize = 64 * 1024;
/// The authentication tag each sealed chunk adds.
const TAG_BYTES: usize = 16;
/// STREAM's nonce prefix: the 12-byte GCM nonce less the 4-byte counter and the last-chunk flag.
pub const NONCE_PREFIX_BYTES: usize = 7;
/// The name of this construction, as a backup's header records it.
pub const CIPHER_NAME: &str = "aes-256-gcm-stream-be32";

/// The key backups are sealed with.
pub struct BackupKey {
    key: [u8; 32],
}

impl BackupKey {
    /// A new random key and its base64 form, to be kept apart from the database and the master key.
    pub fn generate() -> (Self, String) {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        (Self { key }, STANDARD.encode(key))
    }

    /// The key from its base64 form (surrounding whitespace, such as a file's newline, ignored).
    pub fn from_base64(text: &str) -> Result<Self, CryptoError> {
        let bytes = STANDARD.decode(text.trim()).map_err(|_| CryptoError::BadKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| CryptoError::BadKey)?;
        Ok(Self { key })
    }

    /// A public name of the key (16 hex digits of a hash), recorded in each backup so that the
    /// right key can be found without trying them all; it reveals nothing of the key.
    pub fn id(&self) -> String {
        let digest = Sha256::new().chain_update(b"tokenvault backup key id\0").chain_update(self.key).finalize();
        hex::encode(&digest[..8])
    }

    fn aead(&self) -> Aes256Gcm {
        Aes256Gcm::new((&self.key).into())
    }
}

/// A fresh random nonce prefix for one backup.
pub fn new_nonce_prefix() -> [u8; NONCE_PREFIX_BYTES] {
    let mut nonce = [0u8; NONCE_PREFIX_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    nonce
}

/// Seals what is written to it, chunk by chunk, into `inner`; [`SealingWriter::finish`] seals the
/// last chunk and must be called (a stream without its last chunk does not open).
pub struct SealingWriter<W: Write> {
    inner: W,
    encryptor: Option<EncryptorBE32<Aes256Gcm>>,
    aad: Vec<u8>,
    buffer: Vec<u8>,
    written: u64,
}

impl<W: Write> SealingWriter<W> {
    /// `aad` is bound to every chunk: the parts of the backup's header known before its payload.
    pub fn new(key: &BackupKey, nonce: &[u8; NONCE_PREFIX_BYTES], aad: Vec<u8>, inner: W) -> Self {
        let encryptor = EncryptorBE32::from_aead(key.aead(), nonce.as_slice().into());
        Self { inner, encryptor: Some(encryptor), aad, buffer: Vec::with_capacity(CHUNK_BYTES), written: 0 }
    }

    /// Seals the last chunk and returns the inner writer with the sealed bytes written.
    pub fn finish(mut self) -> io::Result<(W, u64)> {
        // The last chunk is the short one: a full buffer goes out as an ordinary chunk first.
        if self.buffer.len() == CHUNK_BYTES {
            self.seal_full_chunk()?;
        }
        let encryptor = self.encryptor.take().expect("finish is called once");
        let sealed = encryptor
            .encrypt_last(Payload { msg: &self.buffer, aad: &self.aad })
            .map_err(|_| io::Error::other("sealing the last backup chunk failed"))?;
        self.inner.write_all(&sealed)?;
        self.written += sealed.len() as u64;
        self.inner.flush()?;
        Ok((self.inner, self.written))
    }

    fn seal_full_chunk(&mut self) -> io::Result<()> {
        let encryptor = self.encryptor.as_mut().expect("not finished");
        let sealed = encryptor
            .encrypt_next(Payload { msg: &self.buffer, aad: &self.aad })
            .map_err(|_| io::Error::other("a backup holds at most 2^32 chunks (256 TiB)"))?;
        self.inner.write_all(&sealed)?;
        self.written += sealed.len() as u64;
        self.buffer.clear();
        Ok(())
    }
}

impl<W: Write> Write for SealingWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        // A full buffer is sealed only once more follows, so that `finish` knows the last chunk.
        if self.buffer.len() == CHUNK_BYTES {
            self.seal_full_chunk()?;
        }
        let take = data.len().min(CHUNK_BYTES - self.buffer.len());
        self.buffer.extend_from_slice(&data[..take]);
        Ok(take)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Opens a sealed stream read from `inner`; any chunk that fails to open (a wrong key, a changed,
/// missing or added byte, a cut-off end) is an [`io::ErrorKind::InvalidData`] error.
pub struct OpeningReader<R: Read> {
    inner: R,
    decryptor: Option<DecryptorBE32<Aes256Gcm>>,
    aad: Vec<u8>,
    plain: Vec<u8>,
    position: usize,
    sealed: Vec<u8>,
}

impl<R: Read> OpeningReader<R> {
    pub fn new(key: &BackupKey, nonce: &[u8; NONCE_PREFIX_BYTES], aad: Vec<u8>, inner: R) -> Self {
        let decryptor = DecryptorBE32::from_aead(key.aead(), nonce.as_slice().into());
        Self {
            inner,
            decryptor: Some(decryptor),
            aad,
            plain: Vec::new(),
            position: 0,
            sealed: vec![0; CHUNK_BYTES + TAG_BYTES],
        }
    }

    /// Reads and opens the next chunk into `plain`; `false` once the last chunk was opened.
    fn next_chunk(&mut self) -> io::Result<bool> {
        let Some(decryptor) = self.decryptor.as_mut() else { return Ok(false) };
        let mut filled = 0;
        while filled < self.sealed.len() {
            match self.inner.read(&mut self.sealed[filled..])? {
                0 => break,
                n => filled += n,
            }
        }
        let unreadable = || {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "the backup does not open: wrong backup key, or the file was changed or cut short",
            )
        };
        let payload = Payload { msg: &self.sealed[..filled], aad: &self.aad };
        if filled == self.sealed.len() {
            self.plain = decryptor.decrypt_next(payload).map_err(|_| unreadable())?;
        } else {
            let decryptor = self.decryptor.take().expect("checked above");
            self.plain = decryptor.decrypt_last(payload).map_err(|_| unreadable())?;
            // Anything after the last chunk was added to the file.
            let mut extra = [0u8; 1];
            if self.inner.read(&mut extra)? != 0 {
                return Err(unreadable());
            }
        }
        self.position = 0;
        Ok(true)
    }
}

impl<R: Read> Read for OpeningReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.position == self.plain.len() {
            if !self.next_chunk()? {
                return Ok(0);
            }
        }
        let n = out.len().min(self.plain.len() - self.position);
        out[..n].copy_from_slice(&self.plain[self.position..self.position + n]);
        self.position += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seal(key: &BackupKey, nonce: &[u8; 7], plain: &[u8]) -> Vec<u8> {
        let mut writer = SealingWriter::new(key, nonce, b"header".to_vec(), Vec::new());
        // Odd-sized writes cross chunk boundaries.
        for piece in plain.chunks(7919) {
            writer.write_all(piece).unwrap();
        }
        let (sealed, written) = writer.finish().unwrap();
        assert_eq!(written as usize, sealed.len());
        sealed
    }

    fn open(key: &BackupKey, nonce: &[u8; 7], aad: &[u8], sealed: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        OpeningReader::new(key, nonce, aad.to_vec(), sealed).read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn round_trips_at_every_chunk_boundary() {
        let (key, _) = BackupKey::generate();
        let nonce = new_nonce_prefix();
        for len in [0, 1, CHUNK_BYTES - 1, CHUNK_BYTES, CHUNK_BYTES + 1, 3 * CHUNK_BYTES, 3 * CHUNK_BYTES + 5] {
            let plain: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let sealed = seal(&key, &nonce, &plain);
            assert_eq!(sealed.len(), len + (len / CHUNK_BYTES + 1) * TAG_BYTES, "length {len}");
            assert_eq!(open(&key, &nonce, b"header", &sealed).unwrap(), plain, "length {len}");
        }
    }

    #[test]
    fn any_change_fails_to_open() {
        let (key, _) = BackupKey::generate();
        let nonce = new_nonce_prefix();
        let plain = vec![7u8; 2 * CHUNK_BYTES + 100];
        let sealed = seal(&key, &nonce, &plain);
        let mut flipped = sealed.clone();
        flipped[CHUNK_BYTES + 40] ^= 1;
        assert!(open(&key, &nonce, b"header", &flipped).is_err(), "a flipped byte");
        assert!(open(&key, &nonce, b"header", &sealed[..2 * (CHUNK_BYTES + TAG_BYTES)]).is_err(), "cut at a chunk");
        assert!(open(&key, &nonce, b"header", &sealed[..sealed.len() - 1]).is_err(), "cut short");
        let mut longer = sealed.clone();
        longer.push(0);
        assert!(open(&key, &nonce, b"header", &longer).is_err(), "a byte added");
        let mut swapped = sealed[CHUNK_BYTES + TAG_BYTES..2 * (CHUNK_BYTES + TAG_BYTES)].to_vec();
        swapped.extend_from_slice(&sealed[..CHUNK_BYTES + TAG_BYTES]);
        swapped.extend_from_slice(&sealed[2 * (CHUNK_BYTES + TAG_BYTES)..]);
        assert!(open(&key, &nonce, b"header", &swapped).is_err(), "chunks reordered");
        assert!(open(&key, &nonce, b"other header", &sealed).is_err(), "another header");
        let (other, _) = BackupKey::generate();
        assert!(open(&other, &nonce, b"header", &sealed).is_err(), "another key");
        assert_eq!(open(&key, &nonce, b"header", &sealed).unwrap(), plain);
    }

    #[test]
    fn keys_have_stable_ids_and_refuse_bad_forms() {
        let (key, text) = BackupKey::generate();
        let again = BackupKey::from_base64(&format!("{text}\n")).unwrap();
        assert_eq!(key.id(), again.id());
        assert_eq!(key.id().len(), 16);
        assert_ne!(key.id(), BackupKey::generate().0.id());
        assert!(BackupKey::from_base64("c2hvcnQ=").is_err());
        assert!(BackupKey::from_base64("not base64!").is_err());
    }
}
