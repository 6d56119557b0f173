-- SPDX-License-Identifier: GPL-3.0-or-later
-- When a user's role, active flag or password changes, the access tokens
-- issued before stop working. Every daemon keeps the recent changes in
-- memory; this column lets a daemon that starts read them back.

ALTER TABLE users ADD COLUMN sessions_valid_after timestamptz NOT NULL DEFAULT '-infinity';
