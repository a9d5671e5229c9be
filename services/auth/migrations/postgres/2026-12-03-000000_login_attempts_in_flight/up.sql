-- Login attempts being verified right now, per account: reserved before the password is
-- checked so that concurrent guesses cannot all pass a lockout check made before any of them
-- failed.
ALTER TABLE login_throttle ADD COLUMN pending INTEGER NOT NULL DEFAULT 0;
