//! Reading a provider's answer (Amazon, Google, Stripe) whole, but never more than a cap.

use futures::StreamExt;

/// Why an answer could not be read.
pub enum ReadError {
    /// The connection broke off mid-answer.
    BrokeOff(reqwest::Error),
    /// The answer is longer than the cap.
    TooLarge,
}

/// The body of `resp`, up to `max` bytes.
pub async fn read_capped(resp: reqwest::Response, max: usize) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(ReadError::BrokeOff)?;
        if body.len() + chunk.len() > max {
            return Err(ReadError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
