-- SPDX-License-Identifier: GPL-3.0-or-later
-- The mail outbox: mails are rows first, sent (or, without SMTP, written as
-- .eml files) by the daemon afterwards, retried with backoff. Mails carry
-- secrets (reset links), so only the platform scope sees them.

CREATE TABLE mail_outbox (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  company_id uuid REFERENCES companies (id) ON DELETE CASCADE,
  to_address text NOT NULL CHECK (length(to_address) BETWEEN 3 AND 254),
  subject text NOT NULL CHECK (length(subject) BETWEEN 1 AND 200),
  body text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  attempts integer NOT NULL DEFAULT 0,
  last_error text,
  sent_at timestamptz,
  delivered_to text
);
CREATE INDEX mail_outbox_due ON mail_outbox (next_attempt_at) WHERE sent_at IS NULL;

ALTER TABLE mail_outbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE mail_outbox FORCE ROW LEVEL SECURITY;
CREATE POLICY platform_only ON mail_outbox
  USING (calldocker_platform())
  WITH CHECK (calldocker_platform());

GRANT SELECT, INSERT, UPDATE ON mail_outbox TO calldocker_app;
