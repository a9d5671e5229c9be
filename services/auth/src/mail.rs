//! Outgoing email (password resets and invitations) over SMTP with lettre, when `auth.smtp_url` is set.

use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor, message::Mailbox};

use agora_shared::config::Secret;

/// Sends mail through one SMTP relay.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    pub fn new(url: &Secret, from: &str) -> anyhow::Result<Self> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose())
            .map_err(|e| anyhow::anyhow!("invalid configuration: auth.smtp_url: {e}"))?
            .build();
        let from = from
            .parse()
            .map_err(|e| anyhow::anyhow!("invalid configuration: auth.mail_from: {e}"))?;
        Ok(Self { transport, from })
    }

    /// Sends the reset link; failures are logged (the user can ask again).
    pub async fn send_reset(&self, to: &str, link: &str) {
        self.send(
            to,
            "Reset your Agora password",
            format!(
                "Someone asked to reset the password of your Agora account.\n\n\
                 To choose a new password, open this link within 30 minutes:\n{link}\n\n\
                 If it was not you, ignore this message; your password stays as it is.\n"
            ),
        )
        .await
    }

    /// Sends an invitation link; failures are logged (the inviter also got the token).
    pub async fn send_invitation(&self, to: &str, link: &str) {
        self.send(
            to,
            "You are invited to Agora",
            format!(
                "You have been invited to an Agora workspace.\n\n\
                 To accept and choose your password, open this link within 7 days:\n{link}\n\n\
                 If you did not expect this, ignore this message.\n"
            ),
        )
        .await
    }

    async fn send(&self, to: &str, subject: &str, body: String) {
        let Ok(to) = to.parse::<Mailbox>() else {
            return tracing::warn!(subject, "email skipped: recipient address does not parse");
        };
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .body(body);
        match message {
            Ok(message) => {
                if let Err(err) = self.transport.send(message).await {
                    tracing::warn!(error = %err, subject, "email could not be sent");
                }
            }
            Err(err) => tracing::warn!(error = %err, subject, "email could not be built"),
        }
    }
}
