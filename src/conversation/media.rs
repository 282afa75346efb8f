//! Fetching screenshots: app images through `media/get` (MediaId lives three days; `PicUrl` as
//! a fallback), AI-bot images from their five-minute URL, decrypted at once. Only PNG, JPEG,
//! GIF and WebP are accepted, recognised by their bytes, never by a name. Accepted images are
//! stored content-addressed and fsynced before anything refers to them.

use std::time::Duration;

use base64::Engine as _;

use crate::store::media::MediaStore;
use crate::wecom::MediaRef;
use crate::wecom::client::{Client, ClientError};

/// Download attempts before the agent is told.
const ATTEMPTS: u32 = 3;

/// Why an image was not kept; the text goes to the agent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    #[error("截图下载失败（已重试 {ATTEMPTS} 次），请重新发送这张截图。")]
    Download,
    #[error("只支持 PNG、JPEG、GIF、WebP 格式的图片，这个文件不是图片。")]
    NotAnImage,
    #[error("图片太大（超过 {0} MB），请压缩或截取关键部分后重新发送。")]
    TooLarge(usize),
    #[error("保存截图失败，请稍后重新发送。")]
    Store,
}

/// The image type of `bytes` by their first bytes (shared with the outbox and the console).
pub use crate::store::media::sniff;

/// Fetches, checks and stores inbound images.
#[derive(Debug, Clone)]
pub struct Fetcher {
    pub max_bytes: usize,
    /// The AI bot's AES key: its media URLs serve encrypted bytes.
    pub bot_key: [u8; 32],
}

impl Fetcher {
    async fn download(&self, client: &Client, media: &MediaRef) -> Result<Vec<u8>, ClientError> {
        match media {
            MediaRef::MediaId { media_id, pic_url } => match client.media_get(media_id).await {
                Ok(d) => Ok(d.bytes),
                Err(e) if !pic_url.is_empty() => {
                    tracing::info!(error = %e, "media/get failed; trying PicUrl");
                    client.download(pic_url).await.map(|d| d.bytes)
                }
                Err(e) => Err(e),
            },
            MediaRef::Url { url, aeskey } => {
                let raw = client.download(url).await?.bytes;
                let key = match aeskey {
                    Some(k) => base64::engine::general_purpose::STANDARD
                        .decode(k)
                        .ok()
                        .and_then(|b| <[u8; 32]>::try_from(b).ok())
                        .ok_or_else(|| ClientError::Decode("bad per-media aeskey".into()))?,
                    None => self.bot_key,
                };
                crate::wecom::crypto::aes_decrypt(&key, &raw)
                    .map_err(|e| ClientError::Decode(e.to_string()))
            }
        }
    }

    /// Download (with retries), check and durably store one image; returns its sha256.
    pub async fn fetch(
        &self,
        client: &Client,
        store: &MediaStore,
        media: &MediaRef,
    ) -> Result<String, ImageError> {
        let mut last = None;
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 * 4u64.pow(attempt - 1))).await;
            }
            match self.download(client, media).await {
                Ok(bytes) => {
                    if bytes.len() > self.max_bytes {
                        return Err(ImageError::TooLarge(self.max_bytes / (1024 * 1024)));
                    }
                    if sniff(&bytes).is_none() {
                        return Err(ImageError::NotAnImage);
                    }
                    let store = store.clone();
                    return tokio::task::spawn_blocking(move || store.put(&bytes))
                        .await
                        .map_err(|_| ImageError::Store)?
                        .map_err(|e| {
                            tracing::error!(error = %e, "storing a screenshot failed");
                            ImageError::Store
                        });
                }
                Err(ClientError::TooLarge(_)) => {
                    return Err(ImageError::TooLarge(self.max_bytes / (1024 * 1024)));
                }
                Err(e) => {
                    tracing::warn!(attempt, error = %e, "image download failed");
                    last = Some(e);
                }
            }
        }
        if let Some(e) = last {
            tracing::warn!(error = %e, "image download gave up");
        }
        Err(ImageError::Download)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffing_by_content() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n...."), Some("image/png"));
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), Some("image/jpeg"));
        assert_eq!(sniff(b"GIF89a..."), Some("image/gif"));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(sniff(b"%PDF-1.7"), None);
        assert_eq!(
            sniff(b"PK\x03\x04"),
            None,
            "a zip named .png is still a zip"
        );
        assert_eq!(sniff(b""), None);
    }
}
