/* SPDX-License-Identifier: GPL-3.0-or-later */
/* CdPeer: a command-line WebRTC party on CallDocker's signaling (a visitor
 * or an agent) that sends a tone or a WAV file and reports what it hears. */
#pragma once

#include <gio/gio.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

typedef enum {
  CD_PEER_VISITOR,
  CD_PEER_AGENT,
} CdPeerRole;

typedef struct {
  CdPeerRole role;
  char *server;   /* http://host:port/ */
  char *company;  /* visitor: the company called */
  char *origin;   /* visitor: the Origin header sent with the widget session */
  char *page;     /* visitor: the page reported with call.start */
  char *email;    /* agent */
  char *password; /* agent */
  double tone_hz; /* what is sent, unless wav */
  char *wav;
  double expect_hz;        /* 0: nothing expected */
  guint calls;             /* agent: calls to answer before leaving (0: until stopped) */
  guint repeat;            /* visitor: calls to make one after another (0: one) */
  guint reject;            /* agent: offers to reject first */
  double hold_s;           /* hang up this long after connecting (0: never) */
  double timeout_s;        /* give up after this long */
  char *dtmf;              /* visitor: RFC 4733 digits sent once connected */
  char *dtmf_signaling;    /* visitor: digits sent as a signaling message once connected */
  double drop_after_s;     /* close the WebSocket this long after connecting (0: never) */
  double resume_after_s;   /* and come back after this long (0: never) */
  gboolean no_candidates;  /* neither send nor take candidates (ICE cannot connect) */
  gboolean keep_listening; /* visitor: stay after the call ended until timeout */
  gboolean relay_only;     /* visitor: ICE through the TURN servers only */
  GStrv local_addresses;   /* ICE host addresses, nullable */
  char *listen_for;        /* "HZ,HZ,...": each one's windows counted second by second */
  char *press_on;          /* visitor: "HZ:DIGITS,...": RFC 4733 digits each time HZ begins */
  gboolean press_inband;   /* visitor: press them as DTMF tones in the audio sent instead */
  char *entry;             /* visitor: the widget entry point named in call.start */
  char *queue_id;          /* visitor: the queue named in call.start */
  char *silent_after;      /* visitor: "HZ:SECONDS": silent that long after HZ begins */
  char *transfer_to;       /* agent: "agent:ID" or "queue:ID", transfer_after_s after connecting */
  char *transfer_mode;     /* blind (default) or warm */
  double transfer_after_s;
  double complete_after_s; /* warm: complete this long after the target connected */
  double cancel_after_s;   /* warm: cancel instead, this long after */
  char *monitor;           /* a company admin: the call to supervise (no offers taken) */
  char *monitor_modes;     /* "MODE[:SECONDS],...": listen, whisper, barge, each that long */
  gboolean quiet;
} CdPeerOptions;

#define CD_TYPE_PEER (cd_peer_get_type ())
G_DECLARE_FINAL_TYPE (CdPeer, cd_peer, CD, PEER, GObject)

CdPeer *cd_peer_new (const CdPeerOptions *options);
void cd_peer_run_async (CdPeer *self, GCancellable *cancellable, GAsyncReadyCallback callback,
                        gpointer user_data);
/* the report: calls, what was heard, timings, end reasons */
JsonNode *cd_peer_run_finish (CdPeer *self, GAsyncResult *result, GError **error);
void cd_peer_options_clear (CdPeerOptions *options);

int cd_peer_main (CdPeerRole role, int argc, char **argv);

G_END_DECLS
