-- SPDX-License-Identifier: GPL-3.0-or-later
-- Call recordings (docs/storage.md): the sealed Ogg/Opus file lives in the
-- blob store under storage_key, sealed with the company's key of
-- key_version. The row is written when the recording starts (state
-- 'recording'), so a recording whose daemon died is found and recovered
-- ('partial'); 'failed' says why in reason.

CREATE TABLE recordings (
  id uuid PRIMARY KEY,
  company_id uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
  call_id uuid NOT NULL,
  -- who is on which channel: {"left": "visitor", "right": "agent", "agent_id": ...}
  parties jsonb NOT NULL DEFAULT '{}',
  started_at timestamptz NOT NULL DEFAULT now(),
  ended_at timestamptz,
  duration_ms int NOT NULL DEFAULT 0 CHECK (duration_ms >= 0),
  size_bytes bigint NOT NULL DEFAULT 0 CHECK (size_bytes >= 0),
  storage_key text NOT NULL CHECK (length(storage_key) BETWEEN 1 AND 400),
  key_version int NOT NULL CHECK (key_version >= 1),
  state text NOT NULL CHECK (state IN ('recording', 'complete', 'partial', 'failed')),
  reason text CHECK (length(reason) <= 500),
  -- SHA-256 of the stored (sealed) file, hex
  checksum text CHECK (checksum ~ '^[0-9a-f]{64}$'),
  -- the daemon writing it ("HOST/PID/ID"), for recovery
  daemon_id text NOT NULL,
  UNIQUE (id, company_id)
);
CREATE INDEX recordings_company_started ON recordings (company_id, started_at, id);
CREATE INDEX recordings_call ON recordings (call_id);
CREATE INDEX recordings_recording ON recordings (state) WHERE state = 'recording';

ALTER TABLE recordings ENABLE ROW LEVEL SECURITY;
ALTER TABLE recordings FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON recordings
  USING (calldocker_platform() OR company_id = calldocker_company())
  WITH CHECK (calldocker_platform() OR company_id = calldocker_company());

GRANT SELECT, INSERT, UPDATE, DELETE ON recordings TO calldocker_app;
