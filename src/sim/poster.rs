//! How the simulator delivers callbacks to the gateway: plain HTTP, as WeCom's servers do.
//! (The simulator is a stand-in for WeCom, so it has its own HTTP client; the gateway's is
//! `wecom::client`.)

use std::time::Duration;

/// A plain HTTP poster with WeCom's callback timeout.
#[derive(Debug, Clone)]
pub(super) struct CallbackPoster {
    http: reqwest::Client,
}

/// What a callback request got back.
#[derive(Debug, Clone)]
pub(super) struct CallbackAnswer {
    pub status: u16,
    pub body: String,
}

impl CallbackPoster {
    pub(super) fn new(timeout: Duration) -> Result<CallbackPoster, reqwest::Error> {
        Ok(CallbackPoster {
            http: reqwest::Client::builder().timeout(timeout).build()?,
        })
    }

    pub(super) async fn post(
        &self,
        url: &str,
        content_type: &str,
        body: String,
    ) -> Result<CallbackAnswer, reqwest::Error> {
        let request = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        answer(request).await
    }

    /// POST with extra headers (the monitoring panel's bearer token).
    pub(super) async fn post_with(
        &self,
        url: &str,
        content_type: &str,
        body: String,
        headers: &[(&str, &str)],
    ) -> Result<CallbackAnswer, reqwest::Error> {
        let mut request = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        answer(request).await
    }

    pub(super) async fn get(&self, url: &str) -> Result<CallbackAnswer, reqwest::Error> {
        answer(self.http.get(url)).await
    }
}

async fn answer(request: reqwest::RequestBuilder) -> Result<CallbackAnswer, reqwest::Error> {
    let resp = request.send().await?;
    let status = resp.status().as_u16();
    let body = resp.text().await?;
    Ok(CallbackAnswer { status, body })
}
