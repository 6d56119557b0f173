-- SPDX-License-Identifier: GPL-3.0-or-later
-- Each company's keys for sealing its recordings and voicemails at rest
-- (docs/storage.md). A key is stored wrapped (XChaCha20-Poly1305) by the
-- master key, whose fingerprint is kept beside it; the database alone opens
-- nothing. Keys are never changed nor deleted while the company lives: a
-- sealed file names the version of the key that sealed it.

CREATE TABLE company_keys (
  company_id uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
  version int NOT NULL CHECK (version >= 1),
  master_key_id text NOT NULL CHECK (master_key_id ~ '^[0-9a-f]{16}$'),
  wrapped text NOT NULL CHECK (length(wrapped) BETWEEN 1 AND 200),
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (company_id, version)
);

ALTER TABLE company_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE company_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant ON company_keys
  USING (calldocker_platform() OR company_id = calldocker_company())
  WITH CHECK (calldocker_platform() OR company_id = calldocker_company());

GRANT SELECT, INSERT ON company_keys TO calldocker_app;
