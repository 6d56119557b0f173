-- SPDX-License-Identifier: GPL-3.0-or-later
-- The first migration: extensions and the daemon registry. Company data
-- (with row-level security) arrives in later migrations.

CREATE EXTENSION IF NOT EXISTS pgcrypto;

-- Every calldockerd that shares this database, for operations and for
-- relaying signaling to the daemon that owns a call.
CREATE TABLE daemons (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  hostname text NOT NULL,
  pid integer NOT NULL CHECK (pid > 0),
  version text NOT NULL,
  started_at timestamptz NOT NULL DEFAULT now(),
  last_seen_at timestamptz NOT NULL DEFAULT now()
);
