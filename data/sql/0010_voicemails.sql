-- SPDX-License-Identifier: GPL-3.0-or-later
-- Voicemails the IVR recorded (docs/ivr.md): the Ogg/Opus file lives in the
-- blob store under storage_key; the row says whose call it came from, how
-- long it is and what ended it. The call may be gone; the voicemail stays
-- until an admin deletes it (or the company goes).

CREATE TABLE voicemails (
  id uuid PRIMARY KEY,
  company_id uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
  call_id uuid NOT NULL,
  visitor_id text NOT NULL,
  page text,
  country text,
  language text,
  storage_key text NOT NULL CHECK (length(storage_key) BETWEEN 1 AND 400),
  duration_ms int NOT NULL CHECK (duration_ms >= 0),
  size_bytes bigint NOT NULL CHECK (size_bytes >= 0),
  -- what ended it: silence, # (the visitor), max-length, hangup
  ended_by text NOT NULL CHECK (ended_by IN ('silence', '#', 'max-length', 'hangup')),
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (id, company_id)
);
CREATE INDEX voicemails_company_created ON voicemails (company_id, created_at, id);

ALTER TABLE voicemails ENABLE ROW LEVEL SECURITY;
ALTER TABLE voicemails FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON voicemails
  USING (calldocker_platform() OR company_id = calldocker_company())
  WITH CHECK (calldocker_platform() OR company_id = calldocker_company());

GRANT SELECT, INSERT, DELETE ON voicemails TO calldocker_app;
