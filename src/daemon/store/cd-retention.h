/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Retention: recordings and voicemails older than their company's
 * recording_retention_days (settings; 0 or none: kept for ever) are
 * deleted, from the blob store first and then from the database, each
 * deletion written to the audit log. A periodic job on the main loop;
 * every daemon runs it, and a row is deleted (and audited) once. */
#pragma once

#include "../events/cd-metrics.h"
#include "cd-blob-store.h"
#include "cd-pg-pool.h"

G_BEGIN_DECLS

#define CD_TYPE_RETENTION (cd_retention_get_type ())
G_DECLARE_FINAL_TYPE (CdRetention, cd_retention, CD, RETENTION, GObject)

/* Runs every @interval_s, the first time @interval_s after start (at most a
 * minute after). */
CdRetention *cd_retention_new (CdPgPool *pool, CdBlobStore *blobs, CdMetrics *metrics,
                               guint interval_s);

G_END_DECLS
